"""Fixtures shared by every test folder: real servers on free loopback ports."""

from collections.abc import Iterator

import pytest

from tests.support.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite blob server for the whole session, stopped at the end."""
    with Azurite() as server:
        yield server

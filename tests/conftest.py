"""Fixtures shared by every test folder: real servers on free loopback ports."""

from collections.abc import Iterator

import pytest

from local.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite blob server for the whole session, stopped at the end."""
    with Azurite() as server:
        yield server


def pytest_terminal_summary(terminalreporter) -> None:
    """How much captured log output the secrets audit read (tests/support/log_audit.py)."""
    from tests.support.log_audit import totals

    if totals["logs"]:
        terminalreporter.write_line(
            f"secrets audit: {totals['logs']} captured logs, {totals['lines']} lines, "
            "no secret found (a hit fails the test that captured it)"
        )

"""Reliability fixtures: the sample model installed as the loader leaves it."""

import pytest

from tests.support.installed_model import install_sample_model


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """The sample model under a model root of its own (`env` is the app's env for it)."""
    return install_sample_model(tmp_path_factory.mktemp("reliability-models"))

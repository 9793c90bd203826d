"""Reliability fixtures: the sample model installed as the loader leaves it, served by gunicorn."""

from pathlib import Path

import pytest

from tests.support.installed_model import install_sample_model


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """The sample model under a model root of its own; adds `env` for the app."""
    root: Path = tmp_path_factory.mktemp("reliability-models")
    installed = install_sample_model(root)
    installed["env"] = {
        "MODEL_ROOT": str(root),
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "1",
        "MODEL_DIGEST": installed["digest"],
    }
    return installed

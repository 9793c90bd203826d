"""App fixtures: the sample model installed as the loader would, a Flask app, a real gunicorn."""

from pathlib import Path

import pytest

from app import create_app
from app.config import AppConfig
from tests.support.gunicorn_server import GunicornServer
from tests.support.installed_model import install_sample_model


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def sample(model_root: Path) -> dict:
    return install_sample_model(model_root)


@pytest.fixture
def config(model_root: Path, sample: dict) -> AppConfig:
    return AppConfig(
        model_root=model_root,
        model_name="digits",
        model_version="1",
        max_batch_size=8,
        max_request_bytes=64 * 1024,
    )


@pytest.fixture
def client(config: AppConfig):
    return create_app(config).test_client()


@pytest.fixture(scope="session")
def gunicorn(sample: dict):
    with GunicornServer(sample["env"], workers=2) as server:
        yield server

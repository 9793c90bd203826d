"""Loader fixtures: a fresh container on the session's Azurite, and the CLI run for real."""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from local.azurite import Azurite
from tests.support.loader_cli import LoaderRun, run_loader

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A container of its own for each test, deleted afterwards."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    client = service.create_container(f"t{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


@pytest.fixture
def loader_env(azurite: Azurite, container: ContainerClient) -> dict[str, str]:
    """The environment the chart gives the loader, pointed at this test's container."""
    return azurite.loader_env(
        MODEL_CONTAINER=container.container_name,
        MODEL_FETCH_RETRIES="2",
        MODEL_FETCH_BACKOFF_SECONDS="0.1",
    )


@pytest.fixture
def loader(loader_env: dict[str, str]) -> Callable[..., LoaderRun]:
    """Run the CLI with the test's env; `env=` adds or overrides variables for one run."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> LoaderRun:
        return run_loader({**loader_env, **(env or {})}, *args, timeout=timeout)

    return run


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A multi-file model: a 5 MB weights file, a config, a file two directories down."""
    root = tmp_path / "model-src"
    (root / "tokenizer" / "en").mkdir(parents=True)
    (root / "model.onnx").write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    (root / "config.json").write_text('{"labels": 10}\n')
    (root / "tokenizer" / "en" / "vocab.txt").write_text("a\nb\nc\n")
    return root


@pytest.fixture
def published(loader, model_dir) -> str:
    """model_dir published as digits/1; its manifest's digest."""
    result = loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()

"""Blob storage going away in the middle of a fetch: retry, or fail cleanly; never half-install."""

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from local.azurite import Azurite
from tests.support.loader_cli import run_loader, start_loader, wait_loader

BLOB_BYTES = 192 * 1024 * 1024
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An Azurite these tests stop and restart (data kept on disk across restarts)."""
    server = Azurite(workdir=tmp_path_factory.mktemp("azurite-data"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_azurite(store):
    """The store, running when the test starts (the test before may have left it stopped)."""
    if store.process is None:
        store.start()
    return store


@pytest.fixture(scope="module")
def published_big(store, tmp_path_factory) -> dict[str, str]:
    """big/1 published once for the module; the loader env to fetch it."""
    source = tmp_path_factory.mktemp("big")
    with (source / "model.onnx").open("wb") as handle:
        for _ in range(BLOB_BYTES // (16 * 1024 * 1024)):
            handle.write(os.urandom(16 * 1024 * 1024))
    # One 1 MiB range at a time: slow enough to be interrupted on purpose.
    env = store.loader_env(
        MODEL_FETCH_RANGE_CONCURRENCY="1", MODEL_FETCH_CHUNK_BYTES=str(1024 * 1024)
    )
    published = run_loader(env, "publish", str(source), "--name", "big", "--version", "1")
    (source / "model.onnx").unlink()
    assert published.returncode == 0, published.stderr
    return env


@pytest.fixture
def big_model(own_azurite, published_big) -> dict[str, str]:
    return published_big


def fetch_then_stop_the_store(server: Azurite, env: dict[str, str], dest: Path):
    """Start a fetch, stop Azurite once 16 MiB have landed (in the content store's temp
    file); the fetch is still running."""
    fetch = start_loader(env, "fetch", "--name", "big", "--version", "1", "--dest", str(dest))
    store = dest / ".blobs" / "sha256"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partial = list(store.glob("*.tmp-*")) if store.is_dir() else []
        if partial and partial[0].stat().st_size >= 16 * 1024 * 1024:
            break
        time.sleep(0.01)
    assert fetch.poll() is None, "the fetch finished (or never started) before the fault"
    server.stop(keep_data=True)
    return fetch


def test_blob_store_gone_mid_download_exits_6_and_installs_nothing(
    own_azurite, big_model, tmp_path
):
    dest = tmp_path / "models"
    env = dict(big_model, MODEL_FETCH_RETRIES="2", MODEL_FETCH_BACKOFF_SECONDS="0.2")
    fetch = fetch_then_stop_the_store(own_azurite, env, dest)
    stopped_at = time.monotonic()
    result = wait_loader(fetch, timeout=120)

    assert result.returncode == 6, result.stderr
    assert "big/1/model.onnx" in result.stderr.splitlines()[-1]
    assert time.monotonic() - stopped_at < 30
    assert list((dest / "big").iterdir()) == []
    stored = [p.name for p in (dest / ".blobs" / "sha256").iterdir()]
    assert [name for name in stored if not name.endswith(".lock")] == []  # temp removed


def test_blob_store_back_after_a_restart_is_retried_to_a_verified_install(
    own_azurite, big_model, tmp_path
):
    dest = tmp_path / "models"
    env = dict(big_model, MODEL_FETCH_RETRIES="6", MODEL_FETCH_BACKOFF_SECONDS="0.5")
    fetch = fetch_then_stop_the_store(own_azurite, env, dest)
    time.sleep(1.5)
    own_azurite.start()
    result = wait_loader(fetch, timeout=180)

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (dest / "big").iterdir()) == ["1"]
    verified = run_loader(big_model, "verify", str(dest / "big" / "1"))
    assert verified.returncode == 0, verified.stderr
    service = BlobServiceClient.from_connection_string(own_azurite.connection_string())
    assert service.get_blob_client("models", "big/1/model.onnx").get_blob_properties().size == (
        BLOB_BYTES
    )


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers: every read stalls."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_read_that_stalls_past_the_timeout_is_transient_and_exits_6(silent_server, tmp_path):
    env = Azurite(port=silent_server).loader_env(
        MODEL_FETCH_READ_TIMEOUT="1", MODEL_FETCH_RETRIES="1", MODEL_FETCH_BACKOFF_SECONDS="0.1"
    )
    started = time.monotonic()

    result = run_loader(env, "fetch", "--name", "big", "--version", "1", "--dest", str(tmp_path))

    assert result.returncode == 6, result.stderr
    assert "big/1/manifest.json" in result.error_line
    assert 1 < time.monotonic() - started < 20  # waited for the timeout, then gave up
    assert list(tmp_path.iterdir()) == []

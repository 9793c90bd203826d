"""The loader against a real Azurite behind a fault-injecting proxy: every fault either heals
after retries into a verified install, or ends with exit 6 naming the blob; never a partial
install. Each case prints its outcome and time (the closing note quotes the table)."""

import os
import time
import uuid
from pathlib import Path

import pytest

from local.azurite import Azurite
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.loader_cli import LoaderRun, run_loader, start_loader, wait_loader

pytestmark = pytest.mark.slow

NAME, VERSION = "faulty", "1"
MODEL_BYTES = 48 * 1024 * 1024
OUTCOMES: list[str] = []
ALWAYS = 10_000
# Short retries and timeouts so that a permanent fault gives up in seconds.
TRANSFER = {
    "MODEL_FETCH_RETRIES": "3",
    "MODEL_FETCH_BACKOFF_SECONDS": "0.1",
    "MODEL_FETCH_READ_TIMEOUT": "1",
    "MODEL_FETCH_CHUNK_BYTES": str(4 * 1024 * 1024),
}


@pytest.fixture(scope="module", autouse=True)
def outcome_table():
    yield
    print("\nLOADER FAULTS (kind, outcome, seconds):\n  " + "\n  ".join(OUTCOMES))


@pytest.fixture(scope="module")
def published(azurite: Azurite, tmp_path_factory) -> dict[str, str]:
    """A 48 MiB model in a container of its own; returns the loader env settings."""
    source = tmp_path_factory.mktemp("faulty-model")
    (source / "model.onnx").write_bytes(os.urandom(MODEL_BYTES))
    (source / "config.json").write_text('{"labels": 10}\n')
    settings = {"MODEL_CONTAINER": f"faults{uuid.uuid4().hex[:8]}", **TRANSFER}
    result = run_loader(
        azurite.loader_env(**settings), "publish", str(source), "--name", NAME, "--version", VERSION
    )
    assert result.returncode == 0, result.stderr
    return settings


def fetch_through(
    proxy: FaultProxy, settings: dict[str, str], dest: Path
) -> tuple[LoaderRun, float]:
    env = Azurite(port=proxy.port).loader_env(**settings)
    started = time.monotonic()
    result = run_loader(env, "fetch", "--name", NAME, "--version", VERSION, "--dest", str(dest))
    return result, time.monotonic() - started


def assert_verified(settings: dict[str, str], dest: Path) -> None:
    verified = run_loader(Azurite().loader_env(**settings), "verify", str(dest / NAME / VERSION))
    assert verified.returncode == 0, verified.stderr


def assert_nothing_installed(dest: Path) -> None:
    assert not dest.exists() or list((dest / NAME).iterdir()) == []


HEALING = {
    "reset once": Fault("reset", times=1),
    "503 busy twice": Fault("busy", times=2),
    "stall once": Fault("stall", times=1, stall_seconds=4),
    "truncated once": Fault("truncate", times=1),
}
PERMANENT = {
    "reset always": Fault("reset", times=ALWAYS),
    "503 busy always": Fault("busy", times=ALWAYS),
    "stall always": Fault("stall", times=ALWAYS, stall_seconds=4),
    "truncated always": Fault("truncate", times=ALWAYS),
}


@pytest.mark.parametrize("case", list(HEALING))
def test_a_passing_fault_is_retried_into_a_verified_install(azurite, published, tmp_path, case):
    with FaultProxy(azurite.port, HEALING[case]) as proxy:
        result, seconds = fetch_through(proxy, published, tmp_path)
    OUTCOMES.append(f"{case:18} exit {result.returncode} (verified) {seconds:5.2f}s")

    assert proxy.injected == HEALING[case].times
    assert result.returncode == 0, result.stderr
    assert_verified(published, tmp_path)


@pytest.mark.parametrize("case", list(PERMANENT))
def test_a_lasting_fault_exits_6_naming_the_blob_and_installs_nothing(
    azurite, published, tmp_path, case
):
    with FaultProxy(azurite.port, PERMANENT[case]) as proxy:
        result, seconds = fetch_through(proxy, published, tmp_path)
    OUTCOMES.append(f"{case:18} exit {result.returncode} (nothing installed) {seconds:5.2f}s")

    assert proxy.injected > 1
    assert result.returncode == 6, result.stderr
    assert f"{NAME}/{VERSION}/model.onnx" in result.error_line
    assert seconds < 60
    assert_nothing_installed(tmp_path)


def test_azurite_killed_and_restarted_mid_download_is_retried_into_a_verified_install(
    tmp_path, published
):
    """Its own Azurite (data on disk) behind the proxy, stopped once the first range is half
    through (held there for a moment), and started again 1.5 s later."""
    store = Azurite(workdir=tmp_path / "azurite-data")
    store.workdir.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    (source / "model.onnx").write_bytes(os.urandom(MODEL_BYTES))
    settings = {**published, "MODEL_FETCH_RETRIES": "6", "MODEL_FETCH_BACKOFF_SECONDS": "0.5"}
    hold = Fault("stall", times=1, after_bytes=2 * 1024 * 1024, stall_seconds=0.5)
    args = ("--name", NAME, "--version", VERSION)
    with store, FaultProxy(store.port, hold) as proxy:
        published_here = run_loader(store.loader_env(**settings), "publish", str(source), *args)
        assert published_here.returncode == 0, published_here.stderr
        started = time.monotonic()
        fetch = start_loader(
            Azurite(port=proxy.port).loader_env(**settings),
            *("fetch", *args, "--dest", str(tmp_path / "m")),
        )
        while proxy.injected == 0 and fetch.poll() is None:
            time.sleep(0.01)
        store.stop(keep_data=True)
        time.sleep(1.5)
        store.start()
        result = wait_loader(fetch, timeout=120)
        seconds = time.monotonic() - started
        OUTCOMES.append(
            f"{'azurite restarted':18} exit {result.returncode} (verified) {seconds:5.2f}s, "
            f"{proxy.store_down} requests found it down"
        )

        assert proxy.store_down > 0, "no request found the store down"
        assert result.returncode == 0, result.stderr
        verified = run_loader(
            store.loader_env(**settings), "verify", str(tmp_path / "m" / NAME / VERSION)
        )
        assert verified.returncode == 0, verified.stderr

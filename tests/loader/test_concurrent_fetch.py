"""Two real fetches into one destination (pods sharing a volume), one paused with SIGSTOP at a
chosen point: neither removes the other's staging directory, both exit 0, and what is
installed is complete and verified, whichever renames first. Files come through the root's
content store: a fetch paused "in b.onnx" is paused while it downloads b into the store."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from local.net import free_port, wait_for_port
from tests.loader.test_prefetch import scrape
from tests.support.loader_cli import run_loader, start_loader, stop_loaders, wait_loader

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
# Fetched in this order, one file and one 1 MiB range at a time: slow enough to pause in b.
SIZES = {"a.bin": 16 * MIB, "b.onnx": 96 * MIB, "c.txt": 6}
ONE_AT_A_TIME = {
    "MODEL_FETCH_FILE_CONCURRENCY": "1",
    "MODEL_FETCH_RANGE_CONCURRENCY": "1",
    "MODEL_FETCH_CHUNK_BYTES": str(MIB),
}


@pytest.fixture(scope="module")
def env(azurite) -> Iterator[dict[str, str]]:
    """One container for the module: its tests only read the model published there."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    container = service.create_container(f"t{uuid.uuid4().hex[:12]}")
    yield azurite.loader_env(
        MODEL_CONTAINER=container.container_name,
        MODEL_FETCH_RETRIES="2",
        MODEL_FETCH_BACKOFF_SECONDS="0.1",
        **ONE_AT_A_TIME,
    )
    container.delete_container()


@pytest.fixture(scope="module")
def published(env, tmp_path_factory) -> str:
    source = tmp_path_factory.mktemp("source")
    for name, size in SIZES.items():
        with (source / name).open("wb") as out:
            for start in range(0, size, 16 * MIB):
                out.write(os.urandom(min(16 * MIB, size - start)))
    result = run_loader(env, "publish", str(source), "--name", "digits", "--version", "1")
    shutil.rmtree(source)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def fetches(env, tmp_path) -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts fetches into tmp_path/models; any still running at the end is ended."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        args = ("--name", "digits", "--version", "1", "--dest", str(tmp_path / "models"))
        started.append(start_loader(env, "fetch", *args))
        return started[-1]

    yield start
    stop_loaders(started)


def staging_dirs(dest: Path) -> set[Path]:
    parent = dest / "digits"
    return {p for p in parent.glob(".1.partial-*") if p.is_dir()} if parent.exists() else set()


def pause_when(process: subprocess.Popen, ready: Callable[[], Path | None], what: str) -> Path:
    """SIGSTOP `process` as soon as ready() names a path; that path."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = ready()
        if found:
            process.send_signal(signal.SIGSTOP)
            return found
        time.sleep(0.005)
    raise AssertionError(f"{what} never happened (exit {process.poll()})")


def staged_file(dest: Path, name: str, besides: set[Path]) -> Callable[[], Path | None]:
    """Finds a staging dir, other than `besides`, that holds file `name`."""

    def ready() -> Path | None:
        for staging in staging_dirs(dest) - besides:
            if (staging / name).exists():
                return staging
        return None

    return ready


def downloading_b(dest: Path) -> Callable[[], Path | None]:
    """Finds the staging dir of a fetch that is downloading b.onnx into the store: it holds
    a.bin already and a temp file is being written in the store (c.txt, 6 bytes, comes
    after b.onnx)."""
    store = dest / ".blobs" / "sha256"

    def ready() -> Path | None:
        if not store.is_dir() or not any(store.glob("*.tmp-*")):
            return None
        return staged_file(dest, "a.bin", set())()

    return ready


def blocked_on_a_lock(process: subprocess.Popen) -> Callable[[], bool]:
    """True once the kernel lists `process` waiting for an flock (/proc/locks `->` lines)."""

    def ready() -> bool:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if "->" in fields and fields[fields.index("->") + 4] == str(process.pid):
                    return True
        return False

    return ready


def wait_stopped(process: subprocess.Popen) -> None:
    """Until SIGSTOP has taken effect in every thread (state T): a stop is delivered later
    than it is sent, and the thread that waits for an flock (not the main one) might, woken
    meanwhile by the lock's release, take that lock before it stops."""
    tasks = Path(f"/proc/{process.pid}/task")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(_state(task) == "T" for task in tasks.iterdir()):
            return
        time.sleep(0.005)
    raise AssertionError("SIGSTOP never took effect in every thread")


def _state(task: Path) -> str:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # a thread that has exited meanwhile
        return "T"


@pytest.fixture
def c_lock(env, published, tmp_path) -> Callable[[], int]:
    """Takes c.txt's lock in the store, as a loader fetching c.txt would; an open fd."""
    service = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    manifest = service.get_container_client(env["MODEL_CONTAINER"]).download_blob(
        "digits/1/manifest.json"
    )
    files = json.loads(manifest.readall())["files"]
    sha256 = next(entry["sha256"] for entry in files if entry["path"] == "c.txt")
    store = tmp_path / "models" / ".blobs" / "sha256"

    def take() -> int:
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(store / f"{sha256}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    return take


def assert_complete_and_verified(env, dest: Path, published: str) -> None:
    installed = dest / "digits" / "1"
    verified = run_loader(env, "verify", str(installed))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == published
    files = sorted(p.name for p in installed.iterdir())
    assert files == sorted([*SIZES, "manifest.json", "fetch-report.json", ".verified.json"])


def assert_nothing_left_beside(dest: Path) -> None:
    assert [p.name for p in (dest / "digits").iterdir()] == ["1"]  # no staging, no lock


def test_a_fetch_paused_while_another_installs_finds_its_staging_intact_and_exits_0(
    env, published, fetches, tmp_path, c_lock
):
    """The first is paused while it waits for c.txt's lock (held here, as by another
    loader), so it holds no file's lock; the second then installs the version alone."""
    dest = tmp_path / "models"
    held = c_lock()
    first = fetches()
    pause_when(first, lambda: blocked_on_a_lock(first)() and dest, "first fetch waiting on c.txt")
    wait_stopped(first)
    [first_staging] = staging_dirs(dest)
    os.close(held)

    second = wait_loader(fetches())
    assert second.returncode == 0, second.stderr
    assert first_staging.is_dir() and (first_staging / "a.bin").stat().st_size == SIZES["a.bin"]
    first.send_signal(signal.SIGCONT)
    first_done = wait_loader(first)

    assert first_done.returncode == 0, first_done.stderr
    assert "installed by another fetch first" in first_done.stderr
    assert_complete_and_verified(env, dest, published)
    assert_nothing_left_beside(dest)


def test_a_prefetch_whose_rename_comes_second_reports_the_bytes_it_fetched(
    env, published, fetches, tmp_path, c_lock
):
    """A node's prefetch metrics are its own transfer, also when another loader installed
    the version first: the two files it downloaded, and c.txt taken from the store."""
    dest, port = tmp_path / "models", free_port()
    held = c_lock()
    first = start_loader(
        env,
        "prefetch",
        *("--name", "digits", "--version", "1", "--dest", str(dest)),
        *("--metrics-port", str(port), "--metrics-address", "127.0.0.1"),
    )
    try:
        pause_when(first, lambda: blocked_on_a_lock(first)() and dest, "prefetch waiting on c.txt")
        wait_stopped(first)
        os.close(held)
        second = wait_loader(fetches())
        first.send_signal(signal.SIGCONT)
        wait_for_port(port, timeout=60)  # the prefetcher listens once its version is installed
        metrics = scrape(port)
    finally:
        stop_loaders([first])

    assert second.returncode == 0, second.stderr
    fetched = SIZES["a.bin"] + SIZES["b.onnx"]
    assert metrics["aiapp_prefetch_fetched_bytes"] == [({"version": "1"}, fetched)]
    assert metrics["aiapp_prefetch_reused_bytes"] == [({"version": "1"}, SIZES["c.txt"])]
    assert_complete_and_verified(env, dest, published)


def test_the_installed_directory_is_the_verified_staging_directory_renamed(
    env, published, fetches, tmp_path
):
    """Atomic for the app: the version appears by one rename, so the installed directory
    and its files are the very ones that were staged (same inodes), never a copy."""
    dest = tmp_path / "models"
    fetch = fetches()
    staging = pause_when(fetch, downloading_b(dest), "fetch on b.onnx")
    staged = {path.name: path.stat().st_ino for path in (staging, staging / "a.bin")}
    fetch.send_signal(signal.SIGCONT)

    result = wait_loader(fetch)

    assert result.returncode == 0, result.stderr
    installed = dest / "digits" / "1"
    assert {
        staging.name: installed.stat().st_ino,
        "a.bin": (installed / "a.bin").stat().st_ino,
    } == (staged)
    assert_complete_and_verified(env, dest, published)


def test_a_paused_fetch_that_resumes_and_renames_first_installs_it_whole(
    env, published, fetches, tmp_path
):
    dest = tmp_path / "models"
    first = fetches()
    first_staging = pause_when(first, downloading_b(dest), "first fetch on b.onnx")
    second = fetches()
    pause_when(second, staged_file(dest, "a.bin", {first_staging}), "second fetch on a.bin")

    first.send_signal(signal.SIGCONT)
    first_done = wait_loader(first)

    assert first_done.returncode == 0, first_done.stderr
    assert_complete_and_verified(env, dest, published)  # exit 0 means the whole model
    second.send_signal(signal.SIGCONT)
    second_done = wait_loader(second)
    assert second_done.returncode == 0, second_done.stderr
    assert "installed by another fetch first" in second_done.stderr
    assert_complete_and_verified(env, dest, published)
    assert_nothing_left_beside(dest)


def remove_a(staging: Path) -> None:
    (staging / "a.bin").unlink()


def add_a_stray_file(staging: Path) -> None:
    (staging / "stray.txt").write_text("not in the manifest")


def replace_a_with_same_size(staging: Path) -> None:
    (staging / "a.tmp").write_bytes(os.urandom(SIZES["a.bin"]))
    (staging / "a.tmp").rename(staging / "a.bin")


def rewrite_a_in_place_dated_earlier(staging: Path) -> None:
    """Same inode and size; only its mtime tells, and it now reads as older."""
    before = (staging / "a.bin").stat()
    with (staging / "a.bin").open("r+b") as handle:
        handle.write(os.urandom(MIB))
    os.utime(staging / "a.bin", ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (remove_a, "missing ['a.bin']"),
        (add_a_stray_file, "extra ['stray.txt']"),
        (replace_a_with_same_size, "a.bin: changed after it was verified"),
        (rewrite_a_in_place_dated_earlier, "a.bin: changed after it was verified"),
    ],
)
def test_a_staging_dir_changed_under_a_fetch_exits_5_and_installs_nothing(
    published, fetches, tmp_path, change, says
):
    dest = tmp_path / "models"
    fetch = fetches()
    staging = pause_when(fetch, downloading_b(dest), "fetch on b.onnx")

    change(staging)
    fetch.send_signal(signal.SIGCONT)
    result = wait_loader(fetch)

    assert result.returncode == 5, result.stderr
    assert str(staging) in result.error_line and says in result.error_line
    assert list((dest / "digits").iterdir()) == []


def test_the_staging_dir_and_lock_of_a_killed_fetch_are_removed_by_the_next(
    env, published, fetches, tmp_path
):
    dest = tmp_path / "models"
    killed = fetches()
    staging = pause_when(killed, downloading_b(dest), "fetch on b.onnx")
    killed.kill()
    killed.communicate()
    assert staging.is_dir() and Path(f"{staging}.lock").is_file()
    assert list((dest / ".blobs" / "sha256").glob("*.tmp-*"))

    again = wait_loader(fetches())

    assert again.returncode == 0, again.stderr
    assert_complete_and_verified(env, dest, published)
    assert_nothing_left_beside(dest)
    assert not list((dest / ".blobs" / "sha256").glob("*.tmp-*"))

"""The content store under the model root (model_loader/store.py) against a real Azurite,
the bytes that cross the network counted by our fault proxy in front of it: a version that
shares files with an installed one fetches only the others, two loaders needing one file
fetch it once, a killed loader's half-written file is never trusted, a stored file corrupted
on disk is fetched again, and where hard links are refused (a real EXDEV) files are copied."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local.azurite import Azurite
from model_loader.manifest import sha256_of_file
from tests.loader.test_disk_space import mount_permitted
from tests.support.fault_proxy import FaultProxy
from tests.support.loader_cli import (
    run_audited,
    run_loader,
    start_loader,
    stop_loaders,
    wait_loader,
)

MIB = 1024 * 1024
# Shared by both versions: a.bin and b.onnx; c.txt differs. Fetched in this order, one
# file and one 1 MiB range at a time where a test pauses a loader in b.onnx.
SIZES = {"a.bin": MIB + 7, "b.onnx": 32 * MIB}
C_TEXT = {"1": "labels: 10\n", "2": "labels: 12, retrained\n"}
ONE_AT_A_TIME = {
    "MODEL_FETCH_FILE_CONCURRENCY": "1",
    "MODEL_FETCH_RANGE_CONCURRENCY": "1",
    "MODEL_FETCH_CHUNK_BYTES": str(MIB),
}


@pytest.fixture
def model(loader, tmp_path) -> dict[str, str]:
    """digits/1 and digits/2 published, sharing a.bin and b.onnx; each file's sha256."""
    source = tmp_path / "source"
    source.mkdir()
    for name, size in SIZES.items():
        (source / name).write_bytes(os.urandom(size))
    for version, text in C_TEXT.items():
        (source / "c.txt").write_text(text)
        result = loader("publish", str(source), "--name", "digits", "--version", version)
        assert result.returncode == 0, result.stderr
    shas = {name: sha256_of_file(source / name) for name in SIZES}
    shutil.rmtree(source)
    return shas


@pytest.fixture
def proxy(azurite) -> Iterator[FaultProxy]:
    """Our proxy in front of Azurite, injecting nothing: it counts the bytes sent."""
    with FaultProxy(azurite.port, None) as counting:
        yield counting


@pytest.fixture
def env(loader_env, proxy) -> dict[str, str]:
    """The loader's env through the counting proxy."""
    through = Azurite(port=proxy.port).connection_string()
    return {**loader_env, "AZURE_STORAGE_CONNECTION_STRING": through}


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def started(env, dest) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts fetches of a version into dest; any still running at the end is ended."""
    processes: list[subprocess.Popen] = []

    def start(version: str, **extra: str) -> subprocess.Popen:
        args = fetch_args(dest, version)
        processes.append(start_loader({**env, **extra}, *args))
        return processes[-1]

    yield start
    stop_loaders(processes)


def fetch_args(dest: Path, version: str) -> list[str]:
    return ["fetch", "--name", "digits", "--version", version, "--dest", str(dest)]


def sent(proxy: FaultProxy, container, version: str) -> dict[str, int]:
    """Bytes of each of the version's blobs that crossed the proxy (manifest aside)."""
    counted = proxy.bytes_under(f"/{container.container_name}/digits/{version}/")
    return {path: count for path, count in counted.items() if path != "manifest.json"}


def assert_verified(env: dict[str, str], dest: Path, version: str) -> None:
    verified = run_loader(env, "verify", str(dest / "digits" / version))
    assert verified.returncode == 0, verified.stderr


def store(dest: Path) -> Path:
    return dest / ".blobs" / "sha256"


def temps(dest: Path) -> list[Path]:
    return sorted(store(dest).glob("*.tmp-*")) if store(dest).is_dir() else []


def pause_in_store_download(process: subprocess.Popen, dest: Path, sha256: str) -> Path:
    """SIGSTOP `process` as soon as its temp file for `sha256` is in the store; that file."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = [path for path in temps(dest) if path.name.startswith(sha256)]
        if found:
            process.send_signal(signal.SIGSTOP)
            return found[0]
        time.sleep(0.005)
    raise AssertionError(f"no download of {sha256} into the store (exit {process.poll()})")


def wait_blocked_on_a_lock(process: subprocess.Popen) -> None:
    """Until the kernel lists `process` waiting for an flock (/proc/locks: `->` lines)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if "->" in fields and fields[fields.index("->") + 4] == str(process.pid):
                    return
        time.sleep(0.005)
    raise AssertionError(f"never waited on a lock (exit {process.poll()})")


@pytest.mark.parametrize("verify", ["stat", "full"])
def test_a_version_that_changes_one_file_fetches_that_file_only(
    env, model, proxy, container, dest, verify
):
    """Under `full` each stored file is hashed as it is linked, and reused when it matches."""
    env = {**env, "MODEL_CACHE_VERIFY": verify}
    first = run_loader(env, *fetch_args(dest, "1"))
    assert first.returncode == 0, first.stderr

    second = run_loader(env, *fetch_args(dest, "2"))

    assert second.returncode == 0, second.stderr
    assert sent(proxy, container, "1") == {**SIZES, "c.txt": len(C_TEXT["1"])}
    assert sent(proxy, container, "2") == {"c.txt": len(C_TEXT["2"])}
    report = json.loads((dest / "digits" / "2" / "fetch-report.json").read_text())
    assert report["bytes_fetched"] == len(C_TEXT["2"])
    assert report["bytes_reused"] == sum(SIZES.values())
    done = next(json.loads(line) for line in second.stderr.splitlines() if "fetch done" in line)
    assert (done["bytes_fetched"], done["bytes_reused"]) == (len(C_TEXT["2"]), sum(SIZES.values()))
    inodes = {(dest / "digits" / version / "b.onnx").stat().st_ino for version in C_TEXT} | {
        (store(dest) / model["b.onnx"]).stat().st_ino
    }
    assert len(inodes) == 1, "b.onnx is not one hard-linked file"
    for version in C_TEXT:
        assert_verified(env, dest, version)
    print(
        f"\nINCREMENTAL: digits/1 {sum(sent(proxy, container, '1').values())} bytes fetched, "
        f"digits/2 {sum(sent(proxy, container, '2').values())} bytes fetched, "
        f"{report['bytes_reused']} reused"
    )


def test_two_loaders_installing_versions_that_share_files_fetch_each_file_once(
    env, model, proxy, container, dest, started
):
    """The first is paused while b.onnx downloads into the store; the second, on digits/2,
    takes a.bin from the store and waits on b.onnx's lock until the first has stored it."""
    first = started("1", **ONE_AT_A_TIME)
    pause_in_store_download(first, dest, model["b.onnx"])
    second = started("2")
    wait_blocked_on_a_lock(second)

    first.send_signal(signal.SIGCONT)
    results = [wait_loader(first), wait_loader(second)]

    assert [result.returncode for result in results] == [0, 0], [r.stderr for r in results]
    one, two = sent(proxy, container, "1"), sent(proxy, container, "2")
    for name, size in SIZES.items():
        assert one.get(name, 0) + two.get(name, 0) == size, name
    assert (one["c.txt"], two["c.txt"]) == (len(C_TEXT["1"]), len(C_TEXT["2"]))
    for version in C_TEXT:
        assert_verified(env, dest, version)
    assert temps(dest) == []


def test_a_loader_killed_while_writing_into_the_store_leaves_nothing_trusted(
    env, model, proxy, container, dest, started
):
    killed = started("1", **ONE_AT_A_TIME)
    temp = pause_in_store_download(killed, dest, model["b.onnx"])
    killed.kill()
    killed.communicate()
    assert temp.is_file() and temp.stat().st_size < SIZES["b.onnx"]
    assert not (store(dest) / model["b.onnx"]).exists()
    assert not (dest / "digits" / "1").exists()
    before = dict(sent(proxy, container, "1"))

    again = run_loader(env, *fetch_args(dest, "1"))

    assert again.returncode == 0, again.stderr
    assert_verified(env, dest, "1")
    assert temps(dest) == []
    fetched_again = {
        name: count - before.get(name, 0) for name, count in sent(proxy, container, "1").items()
    }
    assert fetched_again["b.onnx"] == SIZES["b.onnx"]  # whole: the half-written one untrusted
    assert fetched_again["a.bin"] == 0  # verified and stored before the kill: reused


def flip_a_byte(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(SIZES["b.onnx"] // 2)
        byte = handle.read(1)
        handle.seek(SIZES["b.onnx"] // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))


def cut_the_end(path: Path) -> None:
    os.truncate(path, SIZES["b.onnx"] - 1)


def flip_a_byte_dated_earlier(path: Path) -> None:
    """Same inode and size, an mtime older than the record's: the record still doesn't hold."""
    before = path.stat()
    flip_a_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))


@pytest.mark.parametrize(
    ("corrupt", "says"),
    [
        (flip_a_byte, "fails its sha256"),
        (cut_the_end, "has the wrong size"),
        (flip_a_byte_dated_earlier, "fails its sha256"),
    ],
)
def test_a_stored_file_corrupted_on_disk_is_fetched_again_never_served(
    env, model, proxy, container, dest, corrupt, says
):
    assert run_loader(env, *fetch_args(dest, "1")).returncode == 0
    stored = store(dest) / model["b.onnx"]
    corrupt(stored)

    result = run_loader(env, *fetch_args(dest, "2"))

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [event["sha256"] for event in events if says in event["event"]] == [model["b.onnx"]]
    assert sent(proxy, container, "2")["b.onnx"] == SIZES["b.onnx"]
    assert_verified(env, dest, "2")
    assert sha256_of_file(stored) == model["b.onnx"]


@pytest.mark.parametrize(("verify", "hashed"), [("stat", False), ("full", True)])
def test_a_write_with_its_mtime_put_back_is_seen_under_full_only(
    env, model, proxy, container, dest, verify, hashed
):
    """The documented limit of the `stat` rule (README, "Trusting a cache hit"), for stored
    files too: the record holds, so the file is linked without being hashed; `full` hashes
    it, finds the change and fetches it again."""
    env = {**env, "MODEL_CACHE_VERIFY": verify}
    assert run_loader(env, *fetch_args(dest, "1")).returncode == 0
    stored = store(dest) / model["b.onnx"]
    before = stored.stat()
    flip_a_byte(stored)
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))

    result = run_loader(env, *fetch_args(dest, "2"))

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    failed = [event["sha256"] for event in events if "fails its sha256" in event["event"]]
    assert failed == ([model["b.onnx"]] if hashed else [])
    assert ("b.onnx" in sent(proxy, container, "2")) is hashed


@pytest.mark.parametrize("record", [None, "not a record\n"], ids=["missing", "garbled"])
def test_a_stored_file_without_a_readable_record_is_hashed_and_reused(
    env, model, proxy, container, dest, record
):
    """A record lost (a store written before records existed) or garbled: the file is
    hashed as it is linked, reused since it matches, and its record written again."""
    assert run_loader(env, *fetch_args(dest, "1")).returncode == 0
    recorded = store(dest) / f"{model['b.onnx']}.verified"
    recorded.unlink()
    if record is not None:
        recorded.write_text(record)

    result = run_loader(env, *fetch_args(dest, "2"))

    assert result.returncode == 0, result.stderr
    assert sent(proxy, container, "2") == {"c.txt": len(C_TEXT["2"])}
    assert recorded.read_text().split()[0] == str(SIZES["b.onnx"])


# The model root on disk, its digits/ folder a tmpfs of its own: a link from the store into
# it fails with EXDEV. Both versions are fetched and verified in there, then described.
ON_ANOTHER_FILESYSTEM = """
mkdir -p "$ROOT/digits" && mount -t tmpfs -o size=256m tmpfs "$ROOT/digits" || exit 97
for version in 1 2; do
  "$PY" -m model_loader fetch --name digits --version "$version" --dest "$ROOT" || exit
  "$PY" -m model_loader verify "$ROOT/digits/$version" || exit
done
stat -c '%n %h %d' "$ROOT/digits/1/b.onnx" "$ROOT/digits/2/b.onnx" "$STORED" > "$OUT"
cp "$ROOT/digits/2/fetch-report.json" "$OUT.report"
"""


ON_ANOTHER_FILESYSTEM_CORRUPTED = """
mkdir -p "$ROOT/digits" && mount -t tmpfs -o size=256m tmpfs "$ROOT/digits" || exit 97
"$PY" -m model_loader fetch --name digits --version 1 --dest "$ROOT" || exit
"$PY" -c "$FLIP_FIRST_BYTE" "$STORED"
"$PY" -m model_loader fetch --name digits --version 2 --dest "$ROOT" || exit
"$PY" -m model_loader verify "$ROOT/digits/2"
"""
FLIP_FIRST_BYTE = """
import sys
with open(sys.argv[1], "r+b") as handle:
    byte = handle.read(1)
    handle.seek(0)
    handle.write(bytes([byte[0] ^ 0xFF]))
"""
ANOTHER_FILESYSTEM = pytest.mark.skipif(
    shutil.which("unshare") is None or not mount_permitted(),
    reason="needs `unshare -m` and mount (root) to put the versions on a filesystem of their own",
)


@ANOTHER_FILESYSTEM
def test_where_hard_links_fail_files_are_copied_from_the_store(
    env, model, proxy, container, dest, tmp_path
):
    out = tmp_path / "described"
    dest.mkdir()
    run = run_audited(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", ON_ANOTHER_FILESYSTEM],
        {
            **env,
            "ROOT": str(dest),
            "PY": sys.executable,
            "OUT": str(out),
            "STORED": str(store(dest) / model["b.onnx"]),
        },
        "loader",
    )

    assert run.returncode != 97, "no tmpfs could be mounted"
    assert run.returncode == 0, run.stderr
    described = [line.split() for line in out.read_text().splitlines()]
    assert [links for _, links, _ in described] == ["1", "1", "1"], "hard-linked, not copied"
    assert len({device for _, _, device in described}) == 2  # store on disk, versions on tmpfs
    assert sent(proxy, container, "2") == {"c.txt": len(C_TEXT["2"])}
    report = json.loads(Path(f"{out}.report").read_text())
    assert report["bytes_reused"] == sum(SIZES.values())


@ANOTHER_FILESYSTEM
def test_where_hard_links_fail_a_corrupted_stored_file_is_fetched_again_never_copied(
    env, model, proxy, container, dest
):
    """A copy is hashed as it is written (Azure Files over SMB refuses hard links): a stored
    file whose bytes changed is downloaded again, and version 2 verifies."""
    dest.mkdir()
    stored = store(dest) / model["b.onnx"]
    run = run_audited(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", ON_ANOTHER_FILESYSTEM_CORRUPTED],
        {
            **env,
            "ROOT": str(dest),
            "PY": sys.executable,
            "STORED": str(stored),
            "FLIP_FIRST_BYTE": FLIP_FIRST_BYTE,
        },
        "loader",
    )

    assert run.returncode != 97, "no tmpfs could be mounted"
    assert run.returncode == 0, run.stderr
    assert "stored file fails its sha256, fetching again" in run.stderr
    assert sent(proxy, container, "2")["b.onnx"] == SIZES["b.onnx"]
    assert sha256_of_file(stored) == model["b.onnx"]

"""Faults of the model root itself, against a real Azurite behind our counting proxy: the disk
fills up while the content store is being filled (after the free-space check passed), and a
model root the loader can't write. Each ends with exit 2 and one line naming the path and the
cause, leaves nothing another loader or the app would trust, and a fetch with space succeeds.
(Dead locks, corrupted blobs, two versions at once: test_content_store.py and
test_concurrent_fetch.py.)"""

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.azurite import Azurite
from model_loader.manifest import sha256_of_file
from tests.loader.test_disk_space import mount_permitted
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.loader_cli import run_audited
from tests.support.log_audit import audit

# Root without its capabilities (no CAP_DAC_OVERRIDE): file modes hold, as for a pod's user.
NO_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
OTHER_UID = 10001


needs_mounts = pytest.mark.skipif(
    shutil.which("unshare") is None or not mount_permitted(),
    reason="needs `unshare -m` and mount (root) to put the model root on a tmpfs of its own",
)


@pytest.fixture
def proxy(request, azurite) -> Iterator[FaultProxy]:
    """Our proxy in front of Azurite, with the test's fault (`indirect` parameter) if any."""
    with FaultProxy(azurite.port, getattr(request, "param", None)) as counting:
        yield counting


@pytest.fixture
def env(loader_env, proxy) -> dict[str, str]:
    through = Azurite(port=proxy.port).connection_string()
    return {**loader_env, "AZURE_STORAGE_CONNECTION_STRING": through, "PY": sys.executable}


def fetch_command(root: Path) -> list[str]:
    args = ["fetch", "--name", "digits", "--version", "1", "--dest", str(root)]
    return [sys.executable, "-m", "model_loader", *args]


def model_bytes_sent(proxy: FaultProxy, container) -> dict[str, int]:
    """Bytes of digits/1's files (its manifest aside) that crossed the proxy."""
    counted = proxy.bytes_under(f"/{container.container_name}/digits/1/")
    return {path: count for path, count in counted.items() if path != "manifest.json"}


# A tmpfs of $SIZE on $ROOT. The loader starts; once a temp file is in its store (the
# free-space check passed; model.onnx's first GET is held by the proxy's stall), a filler
# takes every free byte, then the loader resumes and must fail. What is left is recorded
# (with the sha256 of each stored content), the filler removed, and the same fetch runs
# again, then `verify`.
FILLED_WHILE_FETCHING = """
mount -t tmpfs -o "size=$SIZE" tmpfs "$ROOT" || exit 97
"$@" 2> "$OUT/first.err" &
loader=$!
until [ -n "$(find "$ROOT/.blobs/sha256" -name '*.tmp-*' 2>/dev/null)" ]; do
  kill -0 "$loader" 2>/dev/null || break
  sleep 0.01
done
cat /dev/zero > "$ROOT/filler" 2>/dev/null && exit 96
df -k "$ROOT" | awk 'NR == 2 { print $4 }' > "$OUT/free-after-filling"
wait "$loader"; echo $? > "$OUT/first.status"
(cd "$ROOT" && find . -mindepth 1 ! -name filler | sort) > "$OUT/left"
find "$ROOT/.blobs/sha256" -type f ! -name '*.*' -exec sha256sum {} + > "$OUT/stored"
rm "$ROOT/filler"
"$@" && "$PY" -m model_loader verify "$ROOT/digits/1"
"""


@needs_mounts
@pytest.mark.parametrize(
    "proxy",
    [Fault("stall", times=1, after_bytes=0, stall_seconds=3)],
    indirect=True,
    ids=["model.onnx-held"],
)
def test_a_disk_that_fills_during_the_download_exits_2_naming_it_and_keeps_nothing(
    env, published, model_dir, proxy, tmp_path
):
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c", FILLED_WHILE_FETCHING]
    run = run_audited(
        [*namespace, "sh", *fetch_command(root)],
        {**env, "ROOT": str(root), "OUT": str(out), "SIZE": "8m"},
        "loader",
    )

    assert run.returncode not in (96, 97), "no tmpfs, or the filler found no end to it"
    assert proxy.injected == 1, "model.onnx's first GET was not held"
    assert (out / "free-after-filling").read_text().split() == ["0"]
    first = audit("loader", (out / "first.err").read_text())
    errors = [line for line in first.splitlines() if not line.startswith("{")]
    assert (out / "first.status").read_text().split() == ["2"], first
    assert len(errors) == 1, errors
    assert "No space left on device" in errors[0] and str(root) in errors[0], errors[0]
    left = (out / "left").read_text().split()
    assert not [path for path in left if path.startswith("./digits/1")], left
    assert not [path for path in left if ".tmp-" in path or ".partial-" in path], left
    # The small files may have been stored, verified, before the disk filled: nothing else.
    stored = [line.split() for line in (out / "stored").read_text().splitlines()]
    assert all(Path(path).name == sha256 for sha256, path in stored), stored
    assert sha256_of_file(model_dir / "model.onnx") not in {sha256 for sha256, _ in stored}
    assert run.returncode == 0, run.stderr  # the same fetch, with space, then verify


# $ROOT bound onto itself read-only in a mount namespace of its own, proven unwritable.
READ_ONLY = """
mount --bind "$ROOT" "$ROOT" && mount -o remount,ro,bind "$ROOT" "$ROOT" || exit 97
if touch "$ROOT/probe" 2>/dev/null; then exit 98; fi
exec "$@"
"""
# The loader without capabilities, $ROOT another user's 0755 directory, proven unwritable.
NOT_ITS_OWNER = """
if touch "$ROOT/probe" 2>/dev/null; then exit 98; fi
exec "$@"
"""


def read_only(root: Path, command: list[str]) -> list[str]:
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY, "sh", *command]


def not_its_owner(root: Path, command: list[str]) -> list[str]:
    os.chown(root, OTHER_UID, OTHER_UID)
    return [*NO_CAPABILITIES, "sh", "-c", NOT_ITS_OWNER, "sh", *command]


@pytest.mark.parametrize(
    ("confine", "cause"),
    [
        pytest.param(read_only, "Read-only file system", marks=needs_mounts, id="read-only"),
        pytest.param(
            not_its_owner,
            "Permission denied",
            marks=pytest.mark.skipif(
                shutil.which("setpriv") is None or os.geteuid() != 0,
                reason="needs setpriv and root to give the root to another user",
            ),
            id="not-its-owner",
        ),
    ],
)
def test_a_model_root_it_cannot_write_exits_2_naming_it_before_a_byte_of_the_model(
    env, published, proxy, container, tmp_path, confine, cause
):
    root = tmp_path / "models"
    root.mkdir(mode=0o755)

    run = run_audited(confine(root, fetch_command(root)), {**env, "ROOT": str(root)}, "loader")

    assert run.returncode not in (97, 98), "the model root could not be made unwritable"
    assert run.returncode == 2, run.stderr
    line = run.error_line
    assert str(root) in line and cause in line, line
    assert os.listdir(root) == []
    assert model_bytes_sent(proxy, container) == {}

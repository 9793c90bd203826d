"""A model that can't fit the destination's filesystem is refused before a byte of it is
downloaded (exit 2, one line naming the bytes needed and free), leaving nothing behind.
Each fetch runs in a mount namespace of its own with the model root on a small tmpfs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local.azurite import Azurite
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.loader_cli import REPO_ROOT, LoaderRun
from tests.support.log_audit import audit

MIB = 1024 * 1024
ALWAYS = 10_000


def mount_permitted() -> bool:
    probe = ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or not mount_permitted(),
    reason="needs `unshare -m` and mount (root) to put the model root on a small tmpfs",
)

# Mount a tmpfs of $SIZE on $ROOT, optionally seed it, run the loader for each of $VERSIONS
# until one fails, then record what is left on the tmpfs (the namespace, and the tmpfs with
# it, ends with this shell).
ON_A_SMALL_TMPFS = """
mount -t tmpfs -o "size=$SIZE" tmpfs "$ROOT" || exit 97
if [ -n "$SEED" ]; then
  mkdir -p "$(dirname "$ROOT/$SEED")" && head -c "$SEED_BYTES" /dev/zero > "$ROOT/$SEED"
fi
for version in $VERSIONS; do
  "$@" --version "$version"; status=$?
  [ "$status" -eq 0 ] || break
done
(cd "$ROOT" && find . -mindepth 1 | sort) > "$LEFT"
exit $status
"""


@pytest.fixture
def needed(loader, container, model_dir) -> int:
    """digits/1 published; the bytes it takes installed (its files and its manifest)."""
    result = loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    assert result.returncode == 0, result.stderr
    files = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    return files + len(container.download_blob("digits/1/manifest.json").readall())


def fetch_on_tmpfs(
    env: dict[str, str],
    tmp_path: Path,
    size: str,
    seed: tuple[str, int] | None = None,
    versions: str = "1",
) -> tuple[LoaderRun, list[str]]:
    """`fetch digits/V` for each of `versions` (space-separated) into a model root on a tmpfs
    of `size`; the outcome (of the first that failed, or the last) and what was left."""
    root, left = tmp_path / "root", tmp_path / "left.txt"
    root.mkdir()
    fetch = ["fetch", "--name", "digits", "--dest", str(root / "models")]
    namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c", ON_A_SMALL_TMPFS, "sh"]
    seed_path, seed_bytes = seed or ("", 0)
    result = subprocess.run(
        [*namespace, sys.executable, "-m", "model_loader", *fetch],
        env={
            **env,
            "ROOT": str(root),
            "SIZE": size,
            "LEFT": str(left),
            "SEED": seed_path,
            "SEED_BYTES": str(seed_bytes),
            "VERSIONS": versions,
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 97, result.stderr
    run = LoaderRun(
        result.returncode, audit("loader", result.stdout), audit("loader", result.stderr)
    )
    return run, left.read_text().split()


def test_a_model_larger_than_the_free_space_exits_2_before_asking_for_a_byte_of_it(
    loader_env, azurite, needed, tmp_path
):
    """Every read of model.onnx would stall: the refusal comes before any is made."""
    stall = Fault("stall", times=ALWAYS, after_bytes=0, stall_seconds=30)
    with FaultProxy(azurite.port, stall) as proxy:
        env = {
            **loader_env,
            "AZURE_STORAGE_CONNECTION_STRING": Azurite(port=proxy.port).connection_string(),
            "MODEL_FETCH_READ_TIMEOUT": "1",
        }
        result, left = fetch_on_tmpfs(env, tmp_path, "4m")

    assert needed > 4 * MIB
    assert result.returncode == 2, result.stderr
    line = result.error_line
    assert f"needs {needed} bytes, {4 * MIB} bytes are free" in line, line
    assert "digits/1" in line and str(tmp_path / "root") in line
    assert proxy.injected == 0, "model.onnx was requested"
    assert left == []


def test_a_model_that_fits_is_installed(loader_env, needed, tmp_path):
    result, left = fetch_on_tmpfs(loader_env, tmp_path, "8m")

    assert result.returncode == 0, result.stderr
    assert "./models/digits/1/model.onnx" in left
    assert not [path for path in left if ".partial-" in path]


def test_a_dead_fetchs_leftovers_are_removed_before_the_free_space_is_measured(
    loader_env, needed, tmp_path
):
    """4 MiB of a killed fetch's staging dir on an 8 MiB tmpfs: counted as free, it fits."""
    leftover = ("models/digits/.1.partial-deadbeef/model.onnx", 4 * MIB)

    result, left = fetch_on_tmpfs(loader_env, tmp_path, "8m", seed=leftover)

    assert needed + 4 * MIB > 8 * MIB  # would not fit beside the leftover
    assert result.returncode == 0, result.stderr
    assert "./models/digits/1/model.onnx" in left
    assert not [path for path in left if ".partial-" in path]


def test_a_bump_needs_only_the_bytes_the_store_lacks(
    loader, loader_env, needed, model_dir, tmp_path
):
    """Version 2 changes config.json only. On a volume with room for that but not for a second
    copy of the model it is installed: its other files are links to the stored ones."""
    (model_dir / "config.json").write_text('{"labels": 12}\n')
    published = loader("publish", str(model_dir), "--name", "digits", "--version", "2")
    assert published.returncode == 0, published.stderr
    size = needed * 3 // 2  # after version 1, half a model is free

    result, left = fetch_on_tmpfs(loader_env, tmp_path, str(size), versions="1 2")

    assert result.returncode == 0, result.stderr
    assert {"./models/digits/1/model.onnx", "./models/digits/2/model.onnx"} <= set(left)

"""The cache hit: a fetch that finds its version installed and verified does nothing else.
It must be the version asked for (name, version, pinned digest), checked cheaply first, and
it writes only the version directory's mtime (its recency for retention; skipped on a
read-only volume)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local.azurite import ACCOUNT_KEY
from model_loader.manifest import FileEntry, Manifest
from tests.support.loader_cli import run_audited

UNREACHABLE = {
    "AZURE_STORAGE_CONNECTION_STRING": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
}
TIB = 1024**4


@pytest.fixture
def dest(tmp_path, loader, published) -> Path:
    """A model root with digits/1 installed by a real fetch."""
    root = tmp_path / "models"
    installed = loader("fetch", "--name", "digits", "--version", "1", "--dest", str(root))
    assert installed.returncode == 0, installed.stderr
    return root


def fetch_args(dest: Path, version: str = "1", *extra: str) -> list[str]:
    return ["fetch", "--name", "digits", "--version", version, "--dest", str(dest), *extra]


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root (root included) with its inode, mtime and ctime."""
    paths = [root, *sorted(root.rglob("*"))]
    return {
        str(path): (path.lstat().st_ino, path.lstat().st_mtime_ns, path.lstat().st_ctime_ns)
        for path in paths
    }


def test_a_cache_hit_needs_no_blob_store_and_writes_only_its_recency(loader, published, dest):
    version = str(dest / "digits" / "1")
    before = snapshot(dest)
    report = (dest / "digits" / "1" / "fetch-report.json").read_bytes()

    again = loader(*fetch_args(dest, "1", "--digest", published), env=UNREACHABLE)

    assert again.returncode == 0, again.stderr
    hit = next(json.loads(line) for line in again.stderr.splitlines() if "cache hit" in line)
    assert (hit["name"], hit["version"], hit["digest"]) == ("digits", "1", published)
    after = snapshot(dest)
    assert after[version][:1] == before[version][:1]
    assert after[version][1] > before[version][1], "the hit marks the version used"
    assert {k: v for k, v in after.items() if k != version} == {
        k: v for k, v in before.items() if k != version
    }
    assert (dest / "digits" / "1" / "fetch-report.json").read_bytes() == report
    assert json.loads(report)["cache_hit"] is False  # the report of the fetch that installed it


@pytest.mark.parametrize("copy_to", ["digits/7", "other/1"])
def test_a_copy_of_another_version_is_no_hit(loader, dest, copy_to):
    """digits/7 and other/1 were never published: a copy of digits/1 there is no install."""
    shutil.copytree(dest / "digits" / "1", dest / copy_to)
    name, version = copy_to.split("/")

    result = loader("fetch", "--name", name, "--version", version, "--dest", str(dest))

    assert result.returncode == 3, result.stderr
    assert f"{copy_to}/manifest.json" in result.error_line
    assert "not published" in result.error_line


def test_a_copy_of_another_version_is_replaced_by_the_published_one(loader, model_dir, dest):
    (model_dir / "config.json").write_text('{"labels": 12}\n')
    second = loader("publish", str(model_dir), "--name", "digits", "--version", "2")
    assert second.returncode == 0, second.stderr
    shutil.copytree(dest / "digits" / "1", dest / "digits" / "2")

    result = loader(*fetch_args(dest, "2"))

    assert result.returncode == 0, result.stderr
    verified = loader("verify", str(dest / "digits" / "2"))
    assert verified.stdout.strip() == second.stdout.strip()
    assert sorted(p.name for p in (dest / "digits").iterdir()) == ["1", "2"]


def test_an_intact_install_of_another_digest_is_no_hit_for_a_pinned_fetch(
    loader, model_dir, published, dest
):
    """digits/1 republished (--force) with other content: the install of the old one still
    verifies against its own manifest, but a fetch pinned to the new digest replaces it."""
    (model_dir / "config.json").write_text('{"labels": 12}\n')
    forced = loader("publish", str(model_dir), "--name", "digits", "--version", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    new = forced.stdout.strip()
    assert loader("verify", str(dest / "digits" / "1")).stdout.strip() == published != new

    result = loader(*fetch_args(dest, "1", "--digest", new))

    assert result.returncode == 0, result.stderr
    assert '"event": "cache hit"' not in result.stderr
    assert loader("verify", str(dest / "digits" / "1")).stdout.strip() == new
    assert (dest / "digits" / "1" / "config.json").read_text() == '{"labels": 12}\n'


def test_a_pinned_fetch_compares_the_digest_before_hashing_the_installed_files(
    loader, published, dest
):
    """The installed copy's manifest is another one, listing a 1 TiB (sparse) file: hashing
    it would take hours, comparing the manifest's digest with the pin takes nothing."""
    installed = dest / "digits" / "1"
    with (installed / "huge.bin").open("wb") as huge:
        huge.truncate(TIB)
    entries = (FileEntry("huge.bin", TIB, "0" * 64),)
    other = Manifest("digits", "1", "onnx", "2026-11-24T00:00:00Z", "someone", entries)
    (installed / "manifest.json").write_bytes(other.to_bytes())

    result = loader(*fetch_args(dest, "1", "--digest", published), timeout=60)

    assert result.returncode == 0, result.stderr
    assert "digest" in result.stderr and "differs from the pinned" in result.stderr
    assert not (installed / "huge.bin").exists()
    assert loader("verify", str(installed)).stdout.strip() == published


def unshare_permitted() -> bool:
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


# Bind the model root onto itself read-only in a mount namespace of its own, prove that
# writing there fails, then run the loader there.
READ_ONLY_THEN = """
mount --bind "$ROOT" "$ROOT" && mount -o remount,ro,bind "$ROOT" "$ROOT" || exit 97
if touch "$ROOT/probe" 2>/dev/null; then exit 98; fi
exec "$@"
"""


@pytest.mark.skipif(
    shutil.which("unshare") is None or not unshare_permitted(),
    reason="needs `unshare -m` (a mount namespace) to mount the model root read-only",
)
def test_a_cache_hit_on_a_read_only_volume_exits_0(loader_env, published, dest):
    command = [sys.executable, "-m", "model_loader", *fetch_args(dest, "1", "--digest", published)]
    run = run_audited(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_THEN, "sh", *command],
        {**loader_env, "ROOT": str(dest)},
        "loader",
    )

    assert run.returncode not in (97, 98), "the model root could not be made read-only"
    assert run.returncode == 0, run.stderr
    assert '"event": "cache hit"' in run.stderr
    assert not (dest / "probe").exists()
    assert os.access(dest, os.W_OK)  # the namespace's mount went with it

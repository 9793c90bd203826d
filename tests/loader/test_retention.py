"""Retention (model_loader/retention.py) against a real Azurite: after each fetch the root
keeps the `keep` most recently fetched versions of the model and at most `max-bytes`, never
removes a version an app holds (app/model.py's shared flock, taken here by the app's own
function), removes by one rename, and deletes stored contents no version lists any more."""

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest

from app.model import ModelLoadError, OnnxModel, hold_version
from model_loader.retention import used_bytes

VERSIONS = ("1", "2", "3")


@pytest.fixture
def published(loader, model_dir) -> None:
    """Three versions that share model.onnx and vocab.txt; config.json differs in each."""
    for version in VERSIONS:
        (model_dir / "config.json").write_text(json.dumps({"labels": 10, "version": version}))
        result = loader("publish", str(model_dir), "--name", "digits", "--version", version)
        assert result.returncode == 0, result.stderr


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "models"


def fetch(loader, root: Path, version: str, *extra: str, name: str = "digits"):
    result = loader("fetch", "--name", name, "--version", version, "--dest", str(root), *extra)
    assert result.returncode == 0, result.stderr
    return result


def installed(root: Path, name: str = "digits") -> list[str]:
    return sorted(p.name for p in (root / name).iterdir())


def stored(root: Path) -> set[str]:
    return {p.name for p in (root / ".blobs" / "sha256").iterdir() if len(p.name) == 64}


def listed(root: Path, version: str) -> set[str]:
    manifest = json.loads((root / "digits" / version / "manifest.json").read_bytes())
    return {entry["sha256"] for entry in manifest["files"]}


def events(result, name: str) -> list[dict]:
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == name]


def wait_for_a_lock_waiter(path: Path) -> None:
    """Until /proc/locks shows a process waiting (`->`) for a lock on path's inode."""
    inode = f":{path.stat().st_ino} "
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open("/proc/locks") as locks:
            if any("->" in line and inode in line for line in locks):
                return
        time.sleep(0.01)
    raise AssertionError(f"nothing waited for a lock on {path}")


def test_the_keep_most_recently_fetched_versions_stay_and_the_rest_go(loader, published, root):
    for version in VERSIONS:
        fetch(loader, root, version, "--keep", "2")
    assert installed(root) == ["2", "3"]
    assert stored(root) == listed(root, "2") | listed(root, "3")

    fetch(loader, root, "2", "--keep", "2")  # 2 becomes the most recent: 3 stays
    assert installed(root) == ["2", "3"]
    fetch(loader, root, "1", "--keep", "2")  # fetched again: 3 is the least recent now
    assert installed(root) == ["1", "2"]


def test_a_trim_says_what_it_removed_and_frees_the_contents_only_that_version_listed(
    loader, published, root
):
    fetch(loader, root, "1", "--keep", "1")
    only_in_1 = listed(root, "1")
    version_1 = root / "digits" / "1"
    own_files = ("config.json", "manifest.json", "fetch-report.json", ".verified.json")
    config_sha256 = next(
        entry["sha256"]
        for entry in json.loads((version_1 / "manifest.json").read_bytes())["files"]
        if entry["path"] == "config.json"
    )
    config_record = root / ".blobs" / "sha256" / f"{config_sha256}.verified"
    freed = sum((version_1 / name).stat().st_size for name in own_files)
    freed += config_record.stat().st_size

    result = fetch(loader, root, "2", "--keep", "1")

    [trimmed] = events(result, "cache trimmed")
    assert trimmed["removed"] == ["digits/1"]
    assert installed(root) == ["2"]
    assert stored(root) == listed(root, "2")
    gone = only_in_1 - listed(root, "2")
    assert len(gone) == 1  # config.json; model.onnx and vocab.txt are shared
    assert trimmed["bytes_freed"] == freed  # config.json's content was its alone
    assert not config_record.exists()
    assert trimmed["bytes"] == used_bytes(root)
    assert not events(result, "cache above maxBytes")
    assert not [p for p in (root / "digits").iterdir() if p.name.startswith(".")]


def test_a_version_an_app_holds_is_kept_until_the_app_lets_it_go(loader, published, root):
    fetch(loader, root, "1", "--keep", "1")
    serving = hold_version(root / "digits" / "1")  # what the app holds while it serves 1
    try:
        result = fetch(loader, root, "2", "--keep", "1")
        assert installed(root) == ["1", "2"]
        assert [e["version"] for e in events(result, "kept: in use")] == ["digits/1"]
        assert not events(result, "cache trimmed")
        assert listed(root, "1") <= stored(root)
    finally:
        os.close(serving)

    fetch(loader, root, "2", "--keep", "1")
    assert installed(root) == ["2"]


def test_max_bytes_removes_the_least_recently_fetched_of_any_model(loader, published, root):
    fetch(loader, root, "1")
    one_version = used_bytes(root)
    fetch(loader, root, "2")
    bound = one_version + (used_bytes(root) - one_version) // 2  # reports differ by bytes

    result = fetch(loader, root, "3", "--max-bytes", str(bound))

    assert installed(root) == ["3"]
    assert used_bytes(root) <= bound
    assert events(result, "cache trimmed")[0]["removed"] == ["digits/1", "digits/2"]
    assert not events(result, "cache above maxBytes")


@pytest.mark.parametrize("spare", [0, 10**12])
def test_a_root_within_max_bytes_loses_nothing(loader, published, root, spare):
    """At the bound exactly, or far under it, every version stays and nothing is logged."""
    fetch(loader, root, "1")
    fetch(loader, root, "2")
    fetch(loader, root, "3")
    bound = used_bytes(root) + spare

    result = fetch(loader, root, "3", "--max-bytes", str(bound))

    assert installed(root) == ["1", "2", "3"]
    assert not events(result, "cache trimmed") and not events(result, "cache above maxBytes")


def test_keep_counts_the_fetched_models_versions_only(loader, model_dir, root):
    """Models named before and after it in the root keep their versions whatever `keep`;
    a directory there that no loader installed is left alone and stops nothing."""
    for name in ("alpha", "digits", "zeta"):
        for version in ("1", "2"):
            (model_dir / "config.json").write_text(json.dumps({"model": name, "v": version}))
            result = loader("publish", str(model_dir), "--name", name, "--version", version)
            assert result.returncode == 0, result.stderr
    for name in ("alpha", "zeta"):
        fetch(loader, root, "1", name=name)
    for name in ("alpha", "digits", "zeta"):
        (root / name / "notes").mkdir(parents=True)  # no manifest: not an install
    fetch(loader, root, "1", "--keep", "1")

    result = fetch(loader, root, "2", "--keep", "1")

    assert events(result, "cache trimmed")[0]["removed"] == ["digits/1"]
    assert installed(root) == ["2", "notes"]
    assert installed(root, "alpha") == installed(root, "zeta") == ["1", "notes"]


def test_max_bytes_below_the_fetched_version_keeps_it_and_says_so(loader, published, root):
    fetch(loader, root, "1")

    result = fetch(loader, root, "2", "--max-bytes", "1")

    assert installed(root) == ["2"]
    [above] = events(result, "cache above maxBytes")
    assert above["max_bytes"] == 1 and above["bytes"] == used_bytes(root)


def test_versions_a_killed_trim_renamed_aside_are_deleted_by_the_next(loader, published, root):
    fetch(loader, root, "1")
    aside = root / "digits" / ".1.retired-0123456789ab"
    (root / "digits" / "1").rename(aside)

    fetch(loader, root, "2")

    assert not aside.exists()
    assert installed(root) == ["2"]


def test_an_app_starting_on_a_version_being_removed_waits_then_says_it_was_removed(
    loader, published, root
):
    """The removal holds the version's exclusive lock while it renames it aside: an app
    starting then waits on its shared lock and, once let in, finds the version gone."""
    fetch(loader, root, "1")
    version = root / "digits" / "1"
    fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as retention's removal does
    outcome: list[BaseException] = []

    def start_app() -> None:
        try:
            OnnxModel(version, "digits", "1", "", 1)
        except ModelLoadError as exc:
            outcome.append(exc)

    app = threading.Thread(target=start_app, daemon=True)
    app.start()
    wait_for_a_lock_waiter(version)
    version.rename(root / "digits" / ".1.retired-aaaaaaaaaaaa")
    os.close(fd)
    app.join(timeout=30)

    assert not app.is_alive()
    assert "removed by the loader's retention" in str(outcome[0])

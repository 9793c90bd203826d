"""Trusting a cache hit (model_loader/trust.py): a version is trusted by the stat record its
full verification wrote (`.verified.json`), and hashed again whenever the record doesn't
hold; `--verify full` hashes every file at every hit. A file that no longer matches is
fetched again, never served."""

import json
import os
from pathlib import Path

import pytest

from model_loader.manifest import sha256_of_file

RECORD = ".verified.json"


@pytest.fixture
def installed(tmp_path, loader, published) -> Path:
    root = tmp_path / "models"
    result = loader("fetch", "--name", "digits", "--version", "1", "--dest", str(root))
    assert result.returncode == 0, result.stderr
    return root / "digits" / "1"


def fetch_again(loader, installed: Path, *extra: str):
    root = installed.parents[1]
    result = loader("fetch", "--name", "digits", "--version", "1", "--dest", str(root), *extra)
    assert result.returncode == 0, result.stderr
    return result


def log_line(result, message: str) -> dict:
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    found = [line for line in lines if line["event"] == message]
    assert found, f"no {message!r} line in {result.stderr}"
    return found[0]


def manifest_files(installed: Path) -> dict[str, str]:
    manifest = json.loads((installed / "manifest.json").read_bytes())
    return {entry["path"]: entry["sha256"] for entry in manifest["files"]}


def test_an_install_records_each_verified_files_size_inode_and_mtime(installed, published):
    record = json.loads((installed / RECORD).read_bytes())

    assert record["digest"] == published
    assert set(record["files"]) == set(manifest_files(installed))
    for path, (size, inode, mtime_ns) in record["files"].items():
        stat = os.stat(installed / path)
        assert (size, inode, mtime_ns) == (stat.st_size, stat.st_ino, stat.st_mtime_ns)


def test_a_hit_whose_record_holds_is_trusted_by_stat(loader, installed):
    hit = log_line(fetch_again(loader, installed), "cache hit")

    assert hit["trusted"] == "stat"


def test_verify_full_hashes_every_file_at_a_hit(loader, installed):
    hit = log_line(fetch_again(loader, installed, "--verify", "full"), "cache hit")

    assert hit["trusted"] == "full"


def test_a_file_rewritten_at_the_same_size_is_fetched_again_never_served(loader, installed):
    """Written in place (its inode is the stored content's too): the record no longer holds,
    the hash fails, and both the version and the stored content are fetched again."""
    weights = installed / "model.onnx"
    expected = manifest_files(installed)["model.onnx"]
    size = weights.stat().st_size
    with open(weights, "r+b") as file:
        file.write(b"\0" * 16)
    assert weights.stat().st_size == size

    result = fetch_again(loader, installed)

    assert "cache hit" not in result.stderr
    assert "installed copy fails verification" in result.stderr
    assert log_line(result, "fetch done")["bytes_fetched"] >= size
    assert sha256_of_file(weights) == expected
    assert log_line(fetch_again(loader, installed), "cache hit")["trusted"] == "stat"


@pytest.mark.parametrize("moved_ns", [1_000_000, -1_000_000])
def test_a_touched_file_is_hashed_then_its_record_is_written_again(loader, installed, moved_ns):
    config = installed / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + moved_ns))

    first = log_line(fetch_again(loader, installed), "cache hit")
    second = log_line(fetch_again(loader, installed), "cache hit")

    assert (first["trusted"], second["trusted"]) == ("full", "stat")
    recorded = json.loads((installed / RECORD).read_bytes())["files"]["config.json"]
    assert recorded[2] == config.stat().st_mtime_ns


@pytest.mark.parametrize(
    "record",
    [
        "missing",
        "a lower digest",
        "a higher digest",
        "unreadable",
        "a file short",
        "a file extra",
        "no files",
        "files a list",
    ],
)
def test_a_record_that_is_not_this_versions_is_not_trusted(loader, installed, record):
    """An install by a loader from before the record (missing), or a record that describes
    something else: every file is hashed, and the record is written anew."""
    path = installed / RECORD
    body = json.loads(path.read_bytes())
    if record == "missing":
        path.unlink()
    elif record.endswith(" digest"):
        other = "0" * 64 if record == "a lower digest" else "f" * 64
        path.write_text(json.dumps({**body, "digest": other}))
    elif record == "unreadable":
        path.write_text("{")
    elif record == "no files":
        path.write_text(json.dumps({"digest": body["digest"]}))
    elif record == "files a list":
        path.write_text(json.dumps({**body, "files": list(body["files"])}))
    elif record == "a file extra":
        path.write_text(json.dumps({**body, "files": {**body["files"], "x.bin": [1, 2, 3]}}))
    else:
        path.write_text(json.dumps({**body, "files": dict(list(body["files"].items())[1:])}))

    hit = log_line(fetch_again(loader, installed), "cache hit")

    assert hit["trusted"] == "full"
    assert json.loads(path.read_bytes()) == body


@pytest.mark.parametrize("verify", ["stat", "full"])
def test_a_file_swapped_for_a_symlink_to_it_is_fetched_again(loader, installed, verify):
    """Same inode, size, mtime and bytes behind the link, but a symlink can later point
    anywhere: an install holds regular files only, under either rule."""
    weights = installed / "model.onnx"
    moved = installed.parents[1] / "elsewhere.onnx"
    weights.rename(moved)
    weights.symlink_to(moved)

    result = fetch_again(loader, installed, "--verify", verify)

    assert "a symlink, not a file the loader installed" in result.stderr
    assert "cache hit" not in result.stderr
    assert weights.is_file() and not weights.is_symlink()


def test_the_known_limit_of_stat_a_rewrite_with_its_mtime_restored(loader, installed):
    """What `stat` cannot see (README): same size, same inode, mtime put back with utime(2).
    `full` sees it and fetches the file again."""
    weights = installed / "model.onnx"
    before = weights.stat()
    with open(weights, "r+b") as file:
        file.write(b"\0" * 16)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert log_line(fetch_again(loader, installed), "cache hit")["trusted"] == "stat"
    full = fetch_again(loader, installed, "--verify", "full")
    assert "installed copy fails verification" in full.stderr
    assert sha256_of_file(weights) == manifest_files(installed)["model.onnx"]


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--verify", "sha1", "--verify"),
        ("--keep", "0", "MODEL_CACHE_KEEP"),
        ("--max-bytes", "-1", "MODEL_CACHE_MAX_BYTES"),
    ],
)
def test_a_bad_cache_setting_exits_2_naming_it(loader, installed, option, value, named):
    root = installed.parents[1]
    result = loader(
        "fetch", "--name", "digits", "--version", "1", "--dest", str(root), option, value
    )

    assert result.returncode == 2
    assert named in result.error_line

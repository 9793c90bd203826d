import hashlib
import json
import os

import pytest
from azure.storage.blob import ContainerClient

from local.azurite import ACCOUNT_KEY, Azurite
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.loader_cli import run_loader
from tests.support.log_audit import register_secret


@pytest.fixture
def dest(tmp_path):
    """The shared volume's root, apart from the test's other files."""
    return tmp_path / "models"


def fetch_args(dest, *extra: str) -> list[str]:
    return ["fetch", "--name", "digits", "--version", "1", "--dest", str(dest), *extra]


def test_fetch_installs_every_file_with_manifest_and_report(loader, model_dir, published, dest):
    result = loader(*fetch_args(dest, "--digest", published))

    assert result.returncode == 0, result.stderr
    installed = dest / "digits" / "1"
    for name in ("model.onnx", "config.json", "tokenizer/en/vocab.txt"):
        assert (installed / name).read_bytes() == (model_dir / name).read_bytes()
    assert hashlib.sha256((installed / "manifest.json").read_bytes()).hexdigest() == published
    report = json.loads((installed / "fetch-report.json").read_text())
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert report["digest"] == published and report["bytes"] == total
    assert report["files"] == 3 and report["cache_hit"] is False and report["seconds"] > 0
    assert sorted(p.name for p in (dest / "digits").iterdir()) == ["1"]
    assert "fails verification" not in result.stderr  # nothing was installed to verify


def test_fetch_reads_every_option_from_the_chart_env(loader, published, dest):
    env = {
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "1",
        "MODEL_DIGEST": published,
        "MODEL_ROOT": str(dest),
    }
    result = loader("fetch", env=env)

    assert result.returncode == 0, result.stderr
    assert (dest / "digits" / "1" / "model.onnx").is_file()


def test_pinned_digest_mismatch_exits_5_and_installs_nothing(loader, published, dest):
    wrong = "0" * 64

    result = loader(*fetch_args(dest, "--digest", wrong))

    assert result.returncode == 5
    assert published in result.error_line and wrong in result.error_line
    assert not dest.exists()


def test_corrupted_blob_exits_5_and_installs_nothing(loader, container, model_dir, published, dest):
    size = (model_dir / "model.onnx").stat().st_size
    container.upload_blob("digits/1/model.onnx", os.urandom(size), overwrite=True)

    result = loader(*fetch_args(dest))

    assert result.returncode == 5
    assert "digits/1/model.onnx" in result.error_line and "sha256" in result.error_line
    assert not (dest / "digits" / "1").exists()
    assert list((dest / "digits").iterdir()) == []


def test_blob_of_the_wrong_size_exits_5(loader, container, published, dest):
    container.upload_blob("digits/1/config.json", b"{}", overwrite=True)

    result = loader(*fetch_args(dest))

    assert result.returncode == 5
    assert "digits/1/config.json" in result.error_line
    assert not (dest / "digits" / "1").exists()


def test_missing_version_exits_3(loader, published, dest):
    result = loader("fetch", "--name", "digits", "--version", "2", "--dest", str(dest))

    assert result.returncode == 3
    assert "digits/2/manifest.json" in result.error_line
    assert not (dest / "digits" / "2").exists()


def test_version_without_manifest_is_invisible(loader, container, dest):
    container.upload_blob("digits/7/model.onnx", b"weights")

    fetched = loader("fetch", "--name", "digits", "--version", "7", "--dest", str(dest))
    listed = loader("list", "--name", "digits")

    assert fetched.returncode == 3
    assert listed.returncode == 0 and listed.stdout == ""


def test_wrong_account_key_exits_4(loader, azurite, published, dest):
    wrong_key = register_secret("wrong account key", ACCOUNT_KEY[:-8] + "AAAAAAA=")
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(wrong_key)}

    result = loader(*fetch_args(dest), env=env)

    assert result.returncode == 4
    assert "digits/1/manifest.json" in result.error_line and "denied" in result.error_line
    assert wrong_key not in result.stderr + result.stdout


def test_tampered_installed_copy_is_fetched_again(loader, published, dest):
    assert loader(*fetch_args(dest)).returncode == 0
    (dest / "digits" / "1" / "config.json").write_text("tampered")

    again = loader(*fetch_args(dest))

    assert again.returncode == 0, again.stderr
    assert (dest / "digits" / "1" / "config.json").read_text() == '{"labels": 10}\n'
    assert loader("verify", str(dest / "digits" / "1")).stdout.strip() == published


def test_leftovers_of_a_killed_fetch_are_removed(loader, published, dest):
    """Its staging dir (no lock file: its owner is gone), an old copy it moved aside, and a
    lock file alone (its owner died between removing its staging dir and the lock)."""
    for leftover in (dest / "digits" / ".1.partial-deadbeef", dest / "digits" / ".1.retired-0"):
        leftover.mkdir(parents=True)
        (leftover / "model.onnx").write_bytes(b"half")
    (dest / "digits" / ".1.partial-0ddba11.lock").touch()

    result = loader(*fetch_args(dest))

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (dest / "digits").iterdir()) == ["1"]


@pytest.mark.parametrize("evil_path", ["../escaped.txt", "/tmp/absolute.txt", "a/../../b.txt"])
def test_manifest_paths_that_escape_the_destination_are_refused(
    loader, container: ContainerClient, tmp_path, evil_path
):
    manifest = {
        "schema_version": 1,
        "name": "digits",
        "version": "1",
        "format": "onnx",
        "created": "2026-11-24T00:00:00Z",
        "publisher": "mallory",
        "files": [{"path": evil_path, "size": 4, "sha256": hashlib.sha256(b"evil").hexdigest()}],
    }
    container.upload_blob("digits/1/manifest.json", json.dumps(manifest).encode())
    dest = tmp_path / "models"

    result = loader(*fetch_args(dest))

    assert result.returncode == 5
    assert repr(evil_path) in result.error_line
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_file_that_fails_stops_the_files_not_yet_started(
    loader_env, azurite, container, published, tmp_path
):
    """One file at a time: config.json (first) is corrupted, so the fetch fails on it and
    tokenizer/en/vocab.txt (last) is never asked for; any read of it would stall."""
    size = len('{"labels": 10}\n')
    container.upload_blob("digits/1/config.json", b"x" * size, overwrite=True)
    stall = Fault("stall", times=10_000, after_bytes=0, stall_seconds=30)
    with FaultProxy(azurite.port, stall, match="vocab.txt") as proxy:
        env = {
            **loader_env,
            "AZURE_STORAGE_CONNECTION_STRING": Azurite(port=proxy.port).connection_string(),
            "MODEL_FETCH_FILE_CONCURRENCY": "1",
            "MODEL_FETCH_READ_TIMEOUT": "1",  # a fetch that did ask would fail in seconds
        }
        result = run_loader(env, *fetch_args(tmp_path / "models"))

    assert result.returncode == 5, result.stderr
    assert "digits/1/config.json" in result.error_line
    assert proxy.injected == 0, "the last file was asked for after the first one failed"

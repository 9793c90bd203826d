import hashlib
import json
import os
import signal

import pytest

from tests.support.loader_cli import start_loader, wait_loader


def test_publish_prints_the_digest_of_the_uploaded_manifest(loader, container, model_dir):
    result = loader("publish", str(model_dir), "--name", "digits", "--version", "1")

    assert result.returncode == 0, result.stderr
    manifest_bytes = container.download_blob("digits/1/manifest.json").readall()
    assert result.stdout.strip() == hashlib.sha256(manifest_bytes).hexdigest()
    manifest = json.loads(manifest_bytes)
    assert manifest["format"] == "onnx"
    assert manifest["name"] == "digits" and manifest["version"] == "1"
    assert manifest["created"] and manifest["publisher"]
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == {"model.onnx", "config.json", "tokenizer/en/vocab.txt"}
    weights = (model_dir / "model.onnx").read_bytes()
    assert listed["model.onnx"]["size"] == len(weights)
    assert listed["model.onnx"]["sha256"] == hashlib.sha256(weights).hexdigest()
    vocab = container.download_blob("digits/1/tokenizer/en/vocab.txt").readall()
    assert vocab == b"a\nb\nc\n"


def test_published_versions_are_immutable_unless_forced(loader, container, model_dir):
    first = loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    (model_dir / "config.json").write_text('{"labels": 11}\n')

    again = loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    assert again.returncode == 2
    assert "digits/1/manifest.json" in again.error_line and "immutable" in again.error_line
    assert container.download_blob("digits/1/config.json").readall() == b'{"labels": 10}\n'

    forced = loader("publish", str(model_dir), "--name", "digits", "--version", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() != first.stdout.strip()
    assert container.download_blob("digits/1/config.json").readall() == b'{"labels": 11}\n'


def test_forced_publish_removes_files_the_new_version_does_not_have(loader, container, model_dir):
    loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    (model_dir / "tokenizer" / "en" / "vocab.txt").unlink()

    forced = loader("publish", str(model_dir), "--name", "digits", "--version", "1", "--force")

    assert forced.returncode == 0, forced.stderr
    names = {blob.name for blob in container.list_blobs()}
    assert names == {"digits/1/model.onnx", "digits/1/config.json", "digits/1/manifest.json"}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--name", "../etc"),
        ("--name", "a/b"),
        ("--name", "Digits"),
        ("--name", "a..b"),
        ("--version", ".."),
        ("--version", "1/2"),
        ("--version", "1..2"),
        ("--version", "-1"),
    ],
)
def test_bad_names_and_versions_exit_2_naming_the_value(
    loader, container, model_dir, option, value
):
    args = {"--name": "digits", "--version": "1", option: value}
    result = loader("publish", str(model_dir), *[item for pair in args.items() for item in pair])

    assert result.returncode == 2
    assert repr(value) in result.error_line
    assert not list(container.list_blobs())


def test_publishing_a_missing_directory_exits_3(loader, tmp_path):
    result = loader("publish", str(tmp_path / "nope"), "--name", "digits", "--version", "1")

    assert result.returncode == 3
    assert "nope" in result.error_line


def test_a_directory_whose_manifest_no_fetch_would_read_is_refused_before_any_upload(
    loader, container, tmp_path
):
    source = tmp_path / "many"
    source.mkdir()
    (source / "model.onnx").write_bytes(b"onnx")
    for index in range(13_000):  # each entry about 330 bytes: more than 4 MiB in all
        (source / f"{index:0200d}.txt").write_bytes(b"")

    result = loader("publish", str(source), "--name", "digits", "--version", "1")

    assert result.returncode == 2, result.stderr
    assert "13001 files" in result.error_line and "4 MiB" in result.error_line
    assert not list(container.list_blobs())


def test_a_publish_killed_after_its_first_file_leaves_an_invisible_version(
    loader, loader_env, container, tmp_path
):
    """Files first, manifest last: killed as soon as one file is in Blob (a 64 MiB one still
    to go), the version has no manifest, so list, check and fetch don't see it."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.json").write_text("{}\n")
    (source / "b.onnx").write_bytes(os.urandom(64 * 1024 * 1024))
    env = {**loader_env, "MODEL_FETCH_CHUNK_BYTES": str(1024 * 1024)}
    publishing = start_loader(env, "publish", str(source), "--name", "digits", "--version", "1")
    try:
        while (line := publishing.stderr.readline()) and '"event": "uploaded"' not in line:
            pass
        publishing.kill()
    finally:
        killed = wait_loader(publishing)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "digits/1/a.json" in line
    assert "digits/1/a.json" in {blob.name for blob in container.list_blobs()}
    listed = loader("list", "--name", "digits")
    assert listed.returncode == 0 and listed.stdout == ""
    assert loader("check", "--name", "digits", "--version", "1").returncode == 3
    fetched = loader("fetch", "--name", "digits", "--version", "1", "--dest", str(tmp_path / "m"))
    assert fetched.returncode == 3, fetched.stderr

"""One blob's download in-process against the session's Azurite: parallel ranges land in
order, hashed, counted; a blob that is not the manifest's is refused naming both sizes."""

import hashlib
import logging
import os

import pytest
from azure.storage.blob import ContainerClient

from model_loader.config import StorageSettings, TransferSettings
from model_loader.download import HashingFile, Progress, download_file
from model_loader.errors import IntegrityError
from model_loader.manifest import FileEntry
from model_loader.storage import container_client

MIB = 1024 * 1024
# Four 1 MiB ranges and a tail, three at a time: they land out of order.
RANGES = TransferSettings(range_concurrency=3, chunk_bytes=MIB)


def progress_lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.getMessage() == "progress"]


@pytest.fixture
def client(azurite, container) -> ContainerClient:
    """The test's container through the loader's own client, tuned with RANGES."""
    settings = StorageSettings(
        container.container_name, connection_string=azurite.connection_string()
    )
    return container_client(settings, RANGES)


@pytest.fixture
def blob(container) -> tuple[str, bytes]:
    content = os.urandom(4 * MIB + 5)
    container.upload_blob("digits/1/model.onnx", content)
    return "digits/1/model.onnx", content


def entry_for(content: bytes, **changes) -> FileEntry:
    fields = {"path": "model.onnx", "size": len(content)}
    fields["sha256"] = hashlib.sha256(content).hexdigest()
    return FileEntry(**{**fields, **changes})


def test_a_blob_in_parallel_ranges_lands_whole_hashed_and_counted(client, blob, tmp_path):
    name, content = blob
    progress = Progress(len(content), interval=3600)
    destination = tmp_path / "model.onnx"
    umask = os.umask(0o022)
    os.umask(umask)

    landed = download_file(client, name, entry_for(content), destination, RANGES, progress)

    assert destination.read_bytes() == content
    assert progress.done == len(content)
    assert destination.stat().st_mode & 0o777 == 0o644 & ~umask
    now = destination.stat()
    assert (landed.st_ino, landed.st_size, landed.st_mtime_ns) == (
        now.st_ino,
        now.st_size,
        now.st_mtime_ns,
    )


@pytest.mark.parametrize("listed", [-1, +1], ids=["blob longer", "blob shorter"])
def test_a_blob_of_another_size_than_listed_is_refused_naming_both(client, blob, tmp_path, listed):
    name, content = blob
    entry = entry_for(content, size=len(content) + listed)

    with pytest.raises(IntegrityError) as refused:
        download_file(client, name, entry, tmp_path / "m", RANGES, Progress(1, 3600))

    says = f"{client.container_name}/{name}: blob is {len(content)} bytes, manifest says"
    assert f"{says} {entry.size}" in str(refused.value)


@pytest.mark.parametrize("listed", ["0" * 64, "f" * 64])
def test_a_blob_with_another_sha256_is_refused(client, blob, tmp_path, listed):
    name, content = blob
    entry = entry_for(content, sha256=listed)

    with pytest.raises(IntegrityError, match=r"model\.onnx: sha256 differs from the manifest"):
        download_file(client, name, entry, tmp_path / "m", RANGES, Progress(1, 3600))


def test_progress_counts_every_byte_and_logs_at_most_once_per_interval(caplog):
    caplog.set_level(logging.INFO, logger="model_loader")
    quiet, chatty = Progress(10, interval=3600), Progress(20, interval=0)

    for progress in (quiet, chatty):
        progress.add(3)
        progress.add(4)

    assert (quiet.done, chatty.done) == (7, 7)
    lines = progress_lines(caplog)
    assert [(line["bytes"], line["total"]) for line in lines] == [(3, 20), (7, 20)]


def test_the_rate_is_megabytes_per_second_since_the_start():
    progress = Progress(10**9, interval=3600)
    progress.add(12_345_678)
    progress.started -= 10  # as if it had begun 10 s ago

    assert progress.rate() == 1.2
    assert 10 <= progress.seconds() < 11
    progress.add(10**15)  # a rate of a million: a megabyte is 10**6 bytes, to the byte
    progress.started -= 990
    assert progress.rate() == 1_000_000.0
    quick = Progress(10**9, interval=3600)
    quick.add(1_000_000)
    quick.started -= 0.5  # under a second
    assert quick.rate() == 2.0


def test_the_hashing_file_takes_absolute_seeks_only(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        sink = HashingFile(fd)
        assert sink.seekable() and sink.seek(5) == 5 and sink.tell() == 5
        with pytest.raises(ValueError, match="absolute"):
            sink.seek(0, os.SEEK_END)
        sink.write(b"abc")
        assert sink.tell() == 8
        with pytest.raises(IntegrityError, match="gap"):  # bytes 0-4 never written
            sink.hexdigest()
    finally:
        os.close(fd)

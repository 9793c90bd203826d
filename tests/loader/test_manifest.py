"""The manifest module in-process: the refusals test_manifests.py proves through the CLI,
here in milliseconds (so `make mutation` kills its mutants fast), and the exact bytes a
manifest is written as, which every digest depends on."""

import dataclasses
import hashlib
import json

import pytest

from model_loader import manifest as manifests
from model_loader.errors import IntegrityError
from tests.loader.test_manifests import BAD, ENTRY, manifest

VALID = manifest()


@pytest.mark.parametrize("case", list(BAD))
def test_parse_refuses_a_bad_manifest_naming_the_source_and_what_is_wrong(case):
    raw, says = BAD[case]

    with pytest.raises(IntegrityError) as refused:
        manifests.parse(raw, "models/digits/1/manifest.json")

    message = str(refused.value)
    assert message.startswith("models/digits/1/manifest.json: invalid manifest: "), message
    assert says in message


def test_parse_reads_every_field_of_a_valid_manifest():
    parsed = manifests.parse(VALID, "m")

    assert parsed == manifests.Manifest(
        name="digits",
        version="1",
        format="onnx",
        created="2026-11-24T00:00:00Z",
        publisher="mallory",
        files=(manifests.FileEntry(ENTRY["path"], ENTRY["size"], ENTRY["sha256"]),),
    )
    assert parsed.total_bytes == ENTRY["size"]


def test_the_bytes_written_are_canonical_json_and_parse_back_to_the_same_manifest():
    entries = (manifests.FileEntry("b.bin", 7, "b" * 64), manifests.FileEntry("a/c", 0, "c" * 64))
    original = manifests.Manifest("digits", "2", "onnx", "2026-11-24T00:00:00Z", "me", entries)

    raw = original.to_bytes()

    assert raw == (json.dumps(json.loads(raw), indent=2, sort_keys=True) + "\n").encode()
    assert json.loads(raw)["files"] == [
        {"path": "b.bin", "size": 7, "sha256": "b" * 64},
        {"path": "a/c", "size": 0, "sha256": "c" * 64},
    ]
    assert json.loads(raw)["schema_version"] == 1
    assert manifests.parse(raw, "m") == original
    assert original.total_bytes == 7
    assert manifests.digest_of(raw) == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("size", [0, 1, manifests.MAX_FILE_BYTES])
def test_sizes_from_zero_to_the_largest_block_blob_are_accepted(size):
    raw = manifest(files=[{**ENTRY, "size": size}])

    assert manifests.parse(raw, "m").files[0].size == size


def test_a_size_past_the_largest_block_blob_is_refused():
    raw = manifest(files=[{**ENTRY, "size": manifests.MAX_FILE_BYTES + 1}])

    with pytest.raises(IntegrityError, match=f"not between 0 and {manifests.MAX_FILE_BYTES}"):
        manifests.parse(raw, "m")


def test_the_largest_block_blob_is_50000_blocks_of_4000_mib():
    assert manifests.MAX_FILE_BYTES == 50_000 * 4000 * 1024 * 1024


def test_a_manifest_at_the_limit_is_read_and_one_byte_more_is_refused():
    at_limit = b" " * manifests.MAX_MANIFEST_BYTES

    assert manifests.within_limit(at_limit, "m") is at_limit
    padded = VALID + b" " * (manifests.MAX_MANIFEST_BYTES - len(VALID))
    assert manifests.parse(padded, "m") == manifests.parse(VALID, "m")
    with pytest.raises(IntegrityError, match="m: invalid manifest: larger than 4 MiB"):
        manifests.within_limit(at_limit + b" ", "m")
    with pytest.raises(IntegrityError, match="larger than 4 MiB"):
        manifests.parse(at_limit + b" ", "m")


def test_read_file_reads_at_most_one_byte_past_the_limit(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_bytes(VALID)
    assert manifests.read_file(path) == VALID

    path.write_bytes(b" " * (manifests.MAX_MANIFEST_BYTES + 10))
    with pytest.raises(IntegrityError, match=f"{path}: invalid manifest: larger than"):
        manifests.read_file(path)


def test_sha256_of_a_file_spanning_several_hash_blocks(tmp_path):
    content = bytes(range(256)) * (3 * manifests.HASH_BLOCK // 256 + 5)
    path = tmp_path / "weights"
    path.write_bytes(content)

    assert manifests.sha256_of_file(path) == hashlib.sha256(content).hexdigest()


def test_verify_files_names_the_first_file_that_differs(tmp_path):
    (tmp_path / "a").write_bytes(b"onnx")
    good = manifests.FileEntry("a", 4, hashlib.sha256(b"onnx").hexdigest())
    listed = manifests.Manifest("digits", "1", "onnx", "now", "me", (good,))
    manifests.verify_files(tmp_path, listed)

    cases = {
        "missing": (manifests.FileEntry("b", 4, good.sha256), "b: missing"),
        "shorter": (manifests.FileEntry("a", 5, good.sha256), "a: size 4 != manifest 5"),
        "longer": (manifests.FileEntry("a", 3, good.sha256), "a: size 4 != manifest 3"),
        "sha256 below": (manifests.FileEntry("a", 4, "0" * 64), "a: sha256 differs"),
        "sha256 above": (manifests.FileEntry("a", 4, "f" * 64), "a: sha256 differs"),
    }
    for entry, says in cases.values():
        with pytest.raises(IntegrityError, match=says):
            manifests.verify_files(
                tmp_path, listed.__class__(**{**vars(listed), "files": (entry,)})
            )


def test_manifest_records_are_immutable():
    entry = manifests.FileEntry("a", 4, "0" * 64)
    listed = manifests.Manifest("digits", "1", "onnx", "now", "me", (entry,))

    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.size = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        listed.files = ()

"""The install module in-process against the session's Azurite: the report `fetch` returns
says what it installed and whether it found it installed (the CLI prints neither), and the
remote manifest is read bounded and checked against the name, version and pin asked for."""

import pytest

from model_loader.config import StorageSettings, TransferSettings
from model_loader.errors import IntegrityError, NotFoundError
from model_loader.install import fetch, read_remote_manifest, verify_installed
from model_loader.manifest import MAX_MANIFEST_BYTES, digest_of
from model_loader.publish import publish
from model_loader.storage import container_client
from tests.loader.test_manifests import manifest


def test_the_report_says_what_was_installed_then_that_it_was_a_cache_hit(
    azurite, container, model_dir, tmp_path
):
    digest = publish(container, model_dir, "digits", "1", publisher="tests")
    settings = StorageSettings(
        container.container_name, connection_string=azurite.connection_string()
    )
    client = container_client(settings, TransferSettings())
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())

    first = fetch(client, "digits", "1", tmp_path, None, TransferSettings())
    again = fetch(client, "digits", "1", tmp_path, digest, TransferSettings())

    installed = tmp_path / "digits" / "1"
    assert verify_installed(installed, ("digits", "1"), digest)[1] == digest
    for pin in ("0" * 64, "f" * 64):  # below and above the real digest
        with pytest.raises(IntegrityError, match=f"differs from the pinned {pin}"):
            verify_installed(installed, ("digits", "1"), pin)
    for report, hit in ((first, False), (again, True)):
        assert (report.name, report.version, report.digest) == ("digits", "1", digest)
        assert (report.bytes, report.files, report.cache_hit) == (total, 3, hit)
        assert 0 <= report.seconds < 60 and report.fetched_at.endswith("Z")


def read(container, raw: bytes, pinned: str | None = None):
    container.upload_blob("digits/1/manifest.json", raw, overwrite=True)
    return read_remote_manifest(container, "digits", "1", pinned)


def test_a_remote_manifest_is_read_up_to_the_limit_and_refused_past_it(container):
    valid = manifest()
    at_limit = valid + b" " * (MAX_MANIFEST_BYTES - len(valid))

    parsed, raw, digest = read(container, at_limit)

    assert raw == at_limit and digest == digest_of(at_limit) and parsed.name == "digits"
    with pytest.raises(IntegrityError, match=r"digits/1/manifest\.json: invalid manifest: larger"):
        read(container, at_limit + b" ")


def test_a_remote_manifest_of_another_version_or_digest_is_refused(container):
    with pytest.raises(IntegrityError, match=r"digits/1/manifest\.json: manifest is for digits/2"):
        read(container, manifest(version="2"))
    for name, version in (("other", "1"), ("alpha", "1"), ("digits", "0")):  # after, before
        with pytest.raises(IntegrityError, match=f"manifest is for {name}/{version}"):
            read(container, manifest(name=name, version=version))
    for pin in ("0" * 64, "f" * 64):  # below and above the real digest
        with pytest.raises(IntegrityError, match=f"differs from the pinned {pin}"):
            read(container, manifest(), pinned=pin)
    assert read(container, manifest(), pinned=digest_of(manifest()))[2] == digest_of(manifest())


def test_a_version_never_published_is_not_found_naming_it(container):
    with pytest.raises(NotFoundError, match="model digits version 1 is not published"):
        read_remote_manifest(container, "digits", "1")

"""Publish a directory as an immutable model version: files first, manifest last."""

import getpass
import socket
import time
from pathlib import Path

from azure.storage.blob import ContainerClient

from model_loader import manifest as manifests
from model_loader.config import MIB
from model_loader.errors import NotFoundError, UsageError
from model_loader.logs import log
from model_loader.names import MANIFEST_NAME, safe_relative_path, version_prefix
from model_loader.spec import check_declarations
from model_loader.storage import blob_errors

FORMATS_BY_SUFFIX = {".onnx": "onnx"}


def publish(
    container: ContainerClient,
    source: Path,
    name: str,
    version: str,
    force: bool = False,
    model_format: str | None = None,
    publisher: str | None = None,
) -> str:
    """Upload `source` as name/version and return the version's digest."""
    entries = _scan(source)
    check_declarations(source, [entry.path for entry in entries])
    manifest = manifests.Manifest(
        name=name,
        version=version,
        format=model_format or _infer_format(entries),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        publisher=publisher or _default_publisher(),
        files=tuple(entries),
    )
    raw = manifest.to_bytes()
    if len(raw) > manifests.MAX_MANIFEST_BYTES:
        raise UsageError(
            f"{source}: {len(entries)} files make a manifest of {len(raw)} bytes, more than a "
            f"fetch reads ({manifests.MAX_MANIFEST_BYTES // MIB} MiB): pack them"
        )
    prefix = version_prefix(name, version)
    manifest_blob = container.get_blob_client(prefix + MANIFEST_NAME)
    what = f"{container.container_name}/{prefix}{MANIFEST_NAME}"

    with blob_errors(container.container_name):
        if not container.exists():
            container.create_container()
    with blob_errors(what):
        exists = manifest_blob.exists()
    if exists and not force:
        raise UsageError(
            f"{what}: {name} version {version} is already published; versions are immutable "
            "(publish a new version, or --force to replace it)"
        )
    if exists:
        # Hide the old version first so no reader ever sees old manifest + new files.
        with blob_errors(what):
            manifest_blob.delete_blob()
    _remove_stale_blobs(container, prefix, {entry.path for entry in entries})

    for entry in entries:
        blob_name = prefix + entry.path
        with (
            blob_errors(f"{container.container_name}/{blob_name}"),
            (source / entry.path).open("rb") as handle,
        ):
            container.upload_blob(
                blob_name, handle, length=entry.size, overwrite=True, max_concurrency=4
            )
        log("uploaded", blob=blob_name, bytes=entry.size)

    with blob_errors(what):
        # overwrite=False makes the manifest upload itself the immutability check.
        manifest_blob.upload_blob(raw, overwrite=force)
    digest = manifests.digest_of(raw)
    log(
        "published",
        name=name,
        version=version,
        digest=digest,
        files=len(entries),
        bytes=manifest.total_bytes,
    )
    return digest


def _scan(source: Path) -> list[manifests.FileEntry]:
    if not source.is_dir():
        raise NotFoundError(f"{source}: not a directory")
    entries = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(source).as_posix()
        if path.is_symlink():
            raise UsageError(f"{path}: symbolic links are not published")
        try:
            safe_relative_path(relative)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        entries.append(
            manifests.FileEntry(relative, path.stat().st_size, manifests.sha256_of_file(path))
        )
    if not entries:
        raise UsageError(f"{source}: no files to publish")
    return entries


def _infer_format(entries: list[manifests.FileEntry]) -> str:
    found = {
        FORMATS_BY_SUFFIX[Path(e.path).suffix]
        for e in entries
        if Path(e.path).suffix in FORMATS_BY_SUFFIX
    }
    if len(found) != 1:
        raise UsageError("cannot infer the model format: pass --format")
    return found.pop()


def _default_publisher() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _remove_stale_blobs(container: ContainerClient, prefix: str, keep: set[str]) -> None:
    """On --force, delete blobs of the old version that the new one does not have."""
    with blob_errors(f"{container.container_name}/{prefix}"):
        for blob in container.list_blobs(name_starts_with=prefix):
            if blob.name[len(prefix) :] not in keep:
                container.delete_blob(blob.name)

"""Read-only questions about Blob: which versions exist, is a pinned version there."""

from dataclasses import dataclass

from azure.storage.blob import ContainerClient

from model_loader.errors import LoaderError
from model_loader.install import read_remote_manifest
from model_loader.logs import log
from model_loader.names import MANIFEST_NAME
from model_loader.storage import blob_errors


@dataclass(frozen=True)
class VersionInfo:
    version: str
    digest: str
    created: str
    publisher: str
    bytes: int


def list_versions(container: ContainerClient, name: str) -> list[VersionInfo]:
    """Complete versions of `name` (those with a manifest), oldest first."""
    prefix = f"{name}/"
    with blob_errors(f"{container.container_name}/{prefix}"):
        versions = [
            blob.name.split("/")[1]
            for blob in container.list_blobs(name_starts_with=prefix)
            if blob.name.count("/") == 2 and blob.name.endswith("/" + MANIFEST_NAME)
        ]
    found = []
    for version in versions:
        try:
            manifest, _, digest = read_remote_manifest(container, name, version)
        except LoaderError as exc:
            log("skipping unreadable version", version=version, reason=str(exc))
            continue
        found.append(
            VersionInfo(version, digest, manifest.created, manifest.publisher, manifest.total_bytes)
        )
    return sorted(found, key=lambda info: (info.created, info.version))


def check_version(container: ContainerClient, name: str, version: str, digest: str | None) -> str:
    """The release pre-flight: the version's digest, or NotFound/Integrity errors."""
    return read_remote_manifest(container, name, version, digest)[2]

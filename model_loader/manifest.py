"""The manifest of a model version: every file with its size and sha256.

The sha256 of the manifest's exact bytes is the version's digest, the one string that pins it.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from model_loader.errors import IntegrityError, UsageError
from model_loader.names import (
    DIGEST_PATTERN,
    safe_relative_path,
    validate_name,
    validate_version,
)

SCHEMA_VERSION = 1
HASH_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    format: str
    created: str
    publisher: str
    files: tuple[FileEntry, ...]
    schema_version: int = SCHEMA_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes that are uploaded, installed and hashed into the digest."""
        body = asdict(self)
        body["files"] = [asdict(entry) for entry in self.files]
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def digest_of(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def sha256_of_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def parse(manifest_bytes: bytes, source: str) -> Manifest:
    """Parse and validate manifest bytes; IntegrityError names `source` and what is wrong."""
    try:
        body = json.loads(manifest_bytes)
        if body.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {body.get('schema_version')!r}")
        validate_name(body["name"])
        validate_version(body["version"])
        files = tuple(_parse_entry(raw) for raw in body["files"])
        paths = [entry.path for entry in files]
        if len(set(paths)) != len(paths):
            raise ValueError("duplicate file paths")
        return Manifest(
            name=body["name"],
            version=body["version"],
            format=str(body["format"]),
            created=str(body["created"]),
            publisher=str(body["publisher"]),
            files=files,
        )
    except (ValueError, KeyError, TypeError, AttributeError, UsageError) as exc:
        # A bad name inside a manifest is the manifest's fault, not the user's.
        raise IntegrityError(f"{source}: invalid manifest: {exc}") from exc


def _parse_entry(raw: dict) -> FileEntry:
    path = str(safe_relative_path(raw["path"]))
    size = raw["size"]
    sha = raw["sha256"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{path}: size must be a non-negative integer")
    if not isinstance(sha, str) or not DIGEST_PATTERN.match(sha):
        raise ValueError(f"{path}: sha256 must be 64 lowercase hex characters")
    return FileEntry(path=path, size=size, sha256=sha)


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check every file under root against the manifest; IntegrityError on the first mismatch."""
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            raise IntegrityError(f"{path}: missing")
        size = path.stat().st_size
        if size != entry.size:
            raise IntegrityError(f"{path}: size {size} != manifest {entry.size}")
        if sha256_of_file(path) != entry.sha256:
            raise IntegrityError(f"{path}: sha256 differs from the manifest")

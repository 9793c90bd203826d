"""The manifest of a model version: every file with its size and sha256.

The sha256 of the manifest's exact bytes is the version's digest, the one string that pins it.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from model_loader.config import MIB
from model_loader.errors import IntegrityError, UsageError
from model_loader.names import (
    DIGEST_PATTERN,
    safe_relative_path,
    validate_name,
    validate_version,
)

SCHEMA_VERSION = 1
HASH_BLOCK = MIB
# Bounds what a read manifest may cost in memory: about 30,000 files' entries.
MAX_MANIFEST_BYTES = 4 * MIB
TOO_BIG = f"larger than {MAX_MANIFEST_BYTES // MIB} MiB"
MAX_FILE_BYTES = 50_000 * 4000 * MIB  # the largest block blob Azure stores (190.7 TiB)
KIND_NAMES = {str: "a string", int: "an integer", list: "a list"}


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


def read_file(path: Path) -> bytes:
    """An installed manifest's bytes, reading at most one byte past the limit."""
    with path.open("rb") as handle:
        return within_limit(handle.read(MAX_MANIFEST_BYTES + 1), str(path))


def within_limit(manifest_bytes: bytes, source: str) -> bytes:
    """The bytes, or IntegrityError when they are more than a manifest may be."""
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise IntegrityError(f"{source}: invalid manifest: {TOO_BIG}")
    return manifest_bytes


def parse(manifest_bytes: bytes, source: str) -> Manifest:
    """Parse and validate manifest bytes; IntegrityError names `source` and what is wrong."""
    try:
        return _parse(manifest_bytes)
    except (ValueError, UsageError) as exc:
        # A bad name inside a manifest is the manifest's fault, not the user's.
        raise IntegrityError(f"{source}: invalid manifest: {exc}") from None


def _parse(manifest_bytes: bytes) -> Manifest:
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ValueError(TOO_BIG)
    try:
        body = json.loads(manifest_bytes.decode())
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("not JSON (not UTF-8 text)") from None
    except ValueError as exc:  # syntax, or a number too long to convert
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValueError("must be a JSON object")
    if body.get("schema_version") != SCHEMA_VERSION or type(body["schema_version"]) is not int:
        raise ValueError(f"unsupported schema_version {body.get('schema_version')!r}")
    files = _field(body, "files", list)
    if not files:
        raise ValueError("lists no files")
    entries = tuple(_parse_entry(raw, index) for index, raw in enumerate(files))
    _check_layout([entry.path for entry in entries])
    return Manifest(
        name=validate_name(_field(body, "name", str)),
        version=validate_version(_field(body, "version", str)),
        format=_field(body, "format", str),
        created=_field(body, "created", str),
        publisher=_field(body, "publisher", str),
        files=entries,
    )


def _field(body: dict, key: str, kind: type, where: str = "") -> Any:
    if key not in body:
        raise ValueError(f"{where}{key!r} is missing")
    value = body[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}{key} must be {KIND_NAMES[kind]}, not {type(value).__name__}")
    return value


def _parse_entry(raw: object, index: int) -> FileEntry:
    where = f"files[{index}]: "
    if not isinstance(raw, dict):
        raise ValueError(f"{where}each file must be an object")
    path = _field(raw, "path", str, where)
    safe_relative_path(path)
    where = f"{path!r}: "
    size = _field(raw, "size", int, where)
    sha = _field(raw, "sha256", str, where)
    if not 0 <= size <= MAX_FILE_BYTES:
        raise ValueError(f"{where}size {size} is not between 0 and {MAX_FILE_BYTES}")
    if not DIGEST_PATTERN.match(sha):
        raise ValueError(f"{where}sha256 must be 64 lowercase hex characters")
    return FileEntry(path=path, size=size, sha256=sha)


def _check_layout(paths: list[str]) -> None:
    """Every path once, and none of them also the directory of another."""
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise ValueError(f"duplicate file path {path!r}")
        seen.add(path)
    directories = {str(parent) for path in paths for parent in PurePosixPath(path).parents}
    for path in paths:
        if path in directories:
            raise ValueError(f"{path!r} is both a file and a directory")


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check every file under root against the manifest; IntegrityError on the first mismatch."""
    for entry in manifest.files:
        path = root / entry.path
        if path.is_symlink():
            raise IntegrityError(f"{path}: a symlink, not a file the loader installed")
        if not path.is_file():
            raise IntegrityError(f"{path}: missing")
        size = path.stat().st_size
        if size != entry.size:
            raise IntegrityError(f"{path}: size {size} != manifest {entry.size}")
        if sha256_of_file(path) != entry.sha256:
            raise IntegrityError(f"{path}: sha256 differs from the manifest")

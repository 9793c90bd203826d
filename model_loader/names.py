"""Validation of model names, versions, digests and paths inside a version."""

import re
from pathlib import PurePosixPath

from model_loader.errors import UsageError

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$")
DIGEST_PATTERN = re.compile(r"^[a-f0-9]{64}$")
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "fetch-report.json"
RECORD_NAME = ".verified.json"  # install.py: the stat record of a verified install
RESERVED_NAMES = {MANIFEST_NAME, REPORT_NAME, RECORD_NAME}
MAX_PART_BYTES = 255  # a file or directory name on Linux filesystems
MAX_PATH_BYTES = 1024  # a blob name, prefix included, is at most 1024 characters


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name or "") or ".." in name:
        raise UsageError(
            f"invalid model name {name!r}: lowercase letters, digits, '.', '_', '-' "
            f"(pattern {NAME_PATTERN.pattern}), no '..'"
        )
    return name


def validate_version(version: str) -> str:
    if not VERSION_PATTERN.match(version or "") or ".." in version:
        raise UsageError(
            f"invalid model version {version!r}: letters, digits, '.', '_', '+', '-' "
            f"(pattern {VERSION_PATTERN.pattern}), no '..'"
        )
    return version


def validate_digest(digest: str | None) -> str | None:
    """An empty pin means no pin; otherwise it must be a lowercase sha256 hex digest."""
    if not digest:
        return None
    if not DIGEST_PATTERN.match(digest):
        raise UsageError(f"invalid digest {digest!r}: expected 64 lowercase hex characters")
    return digest


def safe_relative_path(path: str) -> PurePosixPath:
    """A file path from a manifest; ValueError if it could escape the version directory or
    could not be written as one file on Linux (control characters, over-long names)."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\\" in path
        or pure.is_absolute()
        or any(part in ("..", ".", "") for part in path.split("/"))
    ):
        raise ValueError(f"refused file path {path!r}: must be relative, without '..'")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        raise ValueError(f"refused file path {path!r}: it holds a control character")
    try:
        encoded = path.encode()
    except UnicodeEncodeError:
        raise ValueError(f"refused file path {path!r}: not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES or any(
        len(part) > MAX_PART_BYTES for part in encoded.split(b"/")
    ):
        raise ValueError(
            f"refused file path {path!r}: longer than {MAX_PATH_BYTES} bytes, or a part of it "
            f"longer than {MAX_PART_BYTES} bytes"
        )
    if path in RESERVED_NAMES:
        raise ValueError(f"refused file path {path!r}: the name is reserved for the loader")
    return pure


def version_prefix(name: str, version: str) -> str:
    """The blob name prefix of a version: `<name>/<version>/`."""
    return f"{name}/{version}/"

"""Retention: after each fetch the root is trimmed to what the values ask (README, "Retention").

- Recency: a fetch that installs a version or finds it installed sets the version directory's
  mtime to now (`mark_used`); "least recently used" means least recently fetched.
- `keep`: of the fetched model's installed versions, the `keep` most recently used stay, the
  fetched one always among them.
- `max_bytes` (0: no bound): then, while the root holds more bytes than that (each file
  counted once however many links it has), the least recently used version of any model
  goes; never the fetched one.
- In use: the app holds a shared flock on its version directory for as long as it serves it
  (app/model.py). A version is removed only while this process holds an exclusive flock on
  it, taken without waiting, so a served version stays ("kept: in use"). Where the volume
  has no flock, nothing is removed. Removal renames the directory aside
  (`.<version>.retired-<id>`, which readers never open) and then deletes it, so a reader
  finds the version whole or not at all.
- Stored contents that no remaining version lists and nothing else links are then deleted,
  each under its blob lock taken without waiting (a content being placed stays).

One trim runs at a time on a root (`.blobs/trim.lock`); a fetch that finds one running skips
its own, since that one trims for it.
"""

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model_loader.logs import log
from model_loader.manifest import parse
from model_loader.names import MANIFEST_NAME
from model_loader.store import BlobStore


@dataclass(frozen=True)
class Installed:
    path: Path
    name: str
    used_ns: int
    contents: frozenset[str]  # sha256 of each of its files


def mark_used(version_directory: Path) -> None:
    """Recency for trimming; on a read-only volume there is none to keep (and no trim)."""
    with contextlib.suppress(OSError):
        os.utime(version_directory)


def hold(version_directory: Path) -> int | None:
    """A shared flock on a version directory, as the app holds the one it serves, for as
    long as this process keeps the returned fd: no trim removes the version meanwhile (the
    prefetcher's pinned version). None where the volume has no flock (nothing is removed)."""
    fd = os.open(version_directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def trim(root: Path, name: str, version: str, keep: int, max_bytes: int) -> list[str]:
    """Trim the root after `name/version` was fetched; the versions removed ("name/version")."""
    store = BlobStore(root)
    if not store.directory.is_dir():
        return []
    with _held(store.directory.parent / "trim.lock") as held:
        if not held:
            return []
        _remove_retired(root)
        fetched = root / name / version
        by_use = sorted(installed_versions(root), key=lambda v: v.used_ns, reverse=True)
        others = [v for v in by_use if v.path != fetched]
        before = used_bytes(root)
        removed = [v for v in [v for v in others if v.name == name][keep - 1 :] if _remove(v)]
        store.remove_unlisted(_listed(root))
        remaining = [v for v in others if v not in removed]
        while max_bytes and used_bytes(root) > max_bytes and remaining:
            oldest = remaining.pop()
            if _remove(oldest):
                removed.append(oldest)
                store.remove_unlisted(_listed(root))
        after = used_bytes(root)
        if removed:
            names = [f"{v.name}/{v.path.name}" for v in removed]
            log("cache trimmed", removed=names, bytes_freed=before - after, bytes=after)
        if max_bytes and after > max_bytes:
            log("cache above maxBytes", bytes=after, max_bytes=max_bytes, kept="in use or fetched")
        return [f"{v.name}/{v.path.name}" for v in removed]


def installed_versions(root: Path) -> list[Installed]:
    """Every `root/<name>/<version>/` with a readable manifest (dot names are never versions)."""
    found = []
    for model in _subdirectories(root):
        for directory in _subdirectories(model):
            try:
                raw = (directory / MANIFEST_NAME).read_bytes()
                used = os.stat(directory).st_mtime_ns
                contents = frozenset(e.sha256 for e in parse(raw, str(directory)).files)
            except (OSError, ValueError):
                continue  # removed meanwhile, or not a loader's install: not ours to trim
            found.append(Installed(directory, model.name, used, contents))
    return found


def used_bytes(root: Path) -> int:
    """Bytes of every file under root, each inode counted once."""
    seen: dict[tuple[int, int], int] = {}
    for directory, _, names in os.walk(root):
        for file_name in names:
            with contextlib.suppress(FileNotFoundError):
                stat = os.stat(os.path.join(directory, file_name), follow_symlinks=False)
                seen[stat.st_dev, stat.st_ino] = stat.st_size
    return sum(seen.values())


def _subdirectories(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if not p.name.startswith(".") and p.is_dir()]
    except OSError:
        return []


def _listed(root: Path) -> set[str]:
    """The contents the versions installed now list (any installed meanwhile included)."""
    return set().union(*(version.contents for version in installed_versions(root)))


def _remove_retired(root: Path) -> None:
    """Versions a killed trim or fetch renamed aside and did not get to delete."""
    for model in _subdirectories(root):
        for retired in model.glob(".*.retired-*"):
            shutil.rmtree(retired, ignore_errors=True)


def _remove(version: Installed) -> bool:
    """Remove a version no app holds; False (and it stays) when one does or flock fails."""
    with _held(version.path) as held:
        if not held:
            log("kept: in use", version=f"{version.name}/{version.path.name}")
            return False
        unique = uuid.uuid4().hex[:12]  # pragma: no mutate (any length of random id will do)
        aside = version.path.parent / f".{version.path.name}.retired-{unique}"
        try:
            version.path.rename(aside)
        except OSError:
            return False  # removed or replaced by another loader meanwhile
    shutil.rmtree(aside, ignore_errors=True)
    return True


@contextlib.contextmanager
def _held(path: Path) -> Iterator[bool]:
    """True while this process holds an exclusive flock on path (a file, created if need be,
    or a directory), taken without waiting; False when another holds it or there is no flock."""
    flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
    try:
        fd = os.open(path, flags, 0o644)  # pragma: no mutate (any mode will do)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)

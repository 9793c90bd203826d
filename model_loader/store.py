"""The content store: every installed file's content once, by sha256, under the model root.

Layout, in `ROOT/.blobs/sha256/` (a dot first: no model name can start so):
- `<hex>`: a file's content. It gets that name only by a rename after its size and sha256
  were checked against a manifest, so a stored file was verified once (write-after-verify).
- `<hex>.tmp-<id>`: being downloaded by the holder of the blob's lock, never trusted; one
  found by the next holder of the lock is a killed loader's and is removed.
- `<hex>.verified`: the stored file's size, inode and mtime when its sha256 last matched,
  written under the blob's lock (the stat record of model_loader/trust.py, for one file).
- `<hex>.lock`: the blob's lock, an `fcntl.flock` on this (empty, kept) file: the kernel
  releases it when its holder exits or is killed, so no lock outlives a loader.

A version's staging directory is built from the store, each file hard-linked (`os.link`) or,
where the filesystem refuses (EXDEV, EPERM, EMLINK, ENOTSUP: found at run time), copied.
Under the blob's lock, a stored file is used when its size matches and, under the `stat`
trust rule, its record still holds (no hash) or else the file linked or copied into the new
version hashes to the manifest's sha256 (a copy is always hashed as it is written);
otherwise it is fetched again (and replaces the stored one), never served. Loaders that
need a blob another one is fetching wait on its lock, then find it stored: each file crosses
the network once per root, and a version that changes one file fetches that file only.

Where `flock` fails (ENOLCK, ENOTSUP: some network filesystems) a loader goes on unlocked and
removes no temp file; where it is not enforced (it succeeds for everyone) one loader may
remove another's temp file, which then fails with exit 6 and is retried by its pod. Either way
correctness rests on write-to-temp, verify, rename and the sha256 at each link: only
duplicate downloads are possible.
"""

import contextlib
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from model_loader.errors import IntegrityError, TransientError
from model_loader.logs import log
from model_loader.manifest import HASH_BLOCK, FileEntry, sha256_of_file
from model_loader.trust import stat_key

STORE_DIR = ".blobs/sha256"
LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
NO_FLOCK = {errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL}
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


class BlobStore:
    """The store of one model root (see the module's docstring)."""

    def __init__(self, root: Path, trust_stat: bool = True) -> None:
        self.directory = root / STORE_DIR
        self.trust_stat = trust_stat

    def path(self, sha256: str) -> Path:
        return self.directory / sha256

    def missing_bytes(self, files: Iterable[FileEntry]) -> int:
        """Bytes to download for `files`: each content not stored at its size, counted once."""
        missing = {entry.sha256: entry.size for entry in files if self._size(entry) != entry.size}
        return sum(missing.values())

    def remove_leftovers(self) -> None:
        """Temp files of killed loaders: those of a blob whose lock can be taken at once."""
        if not self.directory.is_dir():
            return
        for sha256 in {path.name.split(".")[0] for path in self.directory.glob("*.tmp-*")}:
            with self._locked(sha256, wait=False) as held:
                if held:
                    self._remove_temps(sha256)

    def remove_unlisted(self, listed: set[str]) -> None:
        """Delete stored contents not in `listed` that nothing else links (st_nlink 1), each
        under its lock taken without waiting (the trim measures what it freed)."""
        for path in self.directory.glob("?" * 64):
            if path.name in listed:
                continue
            with self._locked(path.name, wait=False) as held, contextlib.suppress(OSError):
                if held and os.stat(path).st_nlink == 1:
                    path.unlink()
                    self._record(path.name).unlink(missing_ok=True)

    def place(
        self, entry: FileEntry, destination: Path, download: Callable[[Path], object]
    ) -> tuple[os.stat_result, bool]:
        """Put entry's content at `destination` from the store, after `download(temp path)`
        into the store when it isn't stored or fails verification. Returns the stat of
        `destination` as verified, and whether this call downloaded the content."""
        with self._locked(entry.sha256, wait=True) as held:
            if held:
                self._remove_temps(entry.sha256)
            size = self._size(entry)
            if size == entry.size:
                stored = os.stat(self.path(entry.sha256))  # before any hash of it
                trusted = self.trust_stat and self._record_holds(entry.sha256, stored)
                landed = self._install(entry, destination, hashed=trusted)
                if landed:
                    self._write_record(entry.sha256, stored)
                    return landed, False
                log("stored file fails its sha256, fetching again", sha256=entry.sha256)
            elif size is not None:
                log("stored file has the wrong size, fetching again", sha256=entry.sha256)
            self._download(entry.sha256, download)
            self._write_record(entry.sha256, os.stat(self.path(entry.sha256)))
            landed = self._install(
                entry,
                destination,
                hashed=True,  # pragma: no mutate (again: only slower)
            )
            if landed is None:
                raise IntegrityError(f"{destination}: copy differs from the verified download")
            return landed, True

    def _record(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.verified"

    def _record_holds(self, sha256: str, stored: os.stat_result) -> bool:
        try:
            return [int(n) for n in self._record(sha256).read_text().split()] == stat_key(stored)
        except (OSError, ValueError):
            return False

    def _write_record(self, sha256: str, verified: os.stat_result) -> None:
        """The record of a stored file whose sha256 matched, from its stat taken before the
        hash, if it still holds (the caller holds the blob's lock)."""
        with contextlib.suppress(OSError):  # no record: it is hashed at its next use
            if stat_key(os.stat(self.path(sha256))) == stat_key(verified):
                self._record(sha256).write_text(" ".join(map(str, stat_key(verified))) + "\n")

    def _size(self, entry: FileEntry) -> int | None:
        try:
            return os.stat(self.path(entry.sha256)).st_size
        except FileNotFoundError:
            return None

    def _download(self, sha256: str, download: Callable[[Path], object]) -> None:
        temp = self.directory / f"{sha256}.tmp-{uuid.uuid4().hex[:12]}"  # pragma: no mutate
        try:
            download(temp)  # raises unless size and sha256 matched
            try:
                temp.rename(self.path(sha256))
            except FileNotFoundError:
                raise TransientError(
                    f"{temp}: removed while being written (is flock enforced on this volume?)"
                ) from None
        finally:
            temp.unlink(missing_ok=True)

    def _install(self, entry: FileEntry, destination: Path, hashed: bool) -> os.stat_result | None:
        """Link (or copy) the stored file to destination; its stat, or None (and nothing at
        destination) when its sha256 isn't the entry's. A link to a file hashed by this very
        download or trusted by its record (`hashed`) is not hashed again; a copy always is,
        as it is written."""
        source = self.path(entry.sha256)
        try:
            os.link(source, destination)
        except OSError as exc:
            if exc.errno not in LINK_REFUSED:
                raise
            return _copy(source, destination, entry.sha256)
        landed = os.stat(destination)  # before hashing: a change meanwhile moves its mtime
        if not hashed and sha256_of_file(destination) != entry.sha256:
            destination.unlink()
            return None
        return landed

    def _remove_temps(self, sha256: str) -> None:
        for temp in self.directory.glob(f"{sha256}.tmp-*"):
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, sha256: str, wait: bool) -> Iterator[bool]:
        """True while this process holds the blob's lock; False when it is held elsewhere
        (only without `wait`) or the filesystem has no flock."""
        lock = self.directory / f"{sha256}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)  # pragma: no mutate (any mode will do)
        try:
            yield _lock(fd, wait)
        finally:
            os.close(fd)


def _lock(fd: int, wait: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in NO_FLOCK:
            raise
        log("no flock on this volume, going on unlocked", reason=exc.strerror)
        return False
    return True


def _copy(source: Path, destination: Path, sha256: str) -> os.stat_result | None:
    """Copy, hashing the bytes as they are written; None (nothing left) on a mismatch. A
    failed write (the disk filled up) leaves nothing either, and its error names the file."""
    digest = hashlib.sha256()
    fd = os.open(destination, NEW_FILE, 0o644)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as reader:
            while block := reader.read(HASH_BLOCK):
                digest.update(block)
                out.write(block)
            out.flush()
            landed = os.fstat(out.fileno())
    except OSError as exc:
        destination.unlink()
        exc.filename = exc.filename or str(destination)
        raise
    if digest.hexdigest() != sha256:
        destination.unlink()
        return None
    return landed

"""Fetch a version into DEST/<name>/<version>/: build it beside, verify, rename into place.

The files come from the root's content store (model_loader/store.py), which downloads only
what it doesn't hold verified: they are hard-linked (or copied) into the staging directory.

Fetches into one destination may run at once (pods sharing a volume). Each builds a
staging directory of its own, `.V.partial-<id>`, which it owns through an flock on
`.V.partial-<id>.lock`: the lock file is created and locked before the directory exists and
unlocked only after the directory is gone (renamed into place or removed). A leftover is a
staging directory whose lock can be taken: its owner died. A fetch that finds the version
installed by another one before its own rename verifies that install and succeeds.
"""

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from azure.storage.blob import ContainerClient

from model_loader import manifest as manifests
from model_loader.config import CacheSettings, TransferSettings
from model_loader.download import Progress, download_file
from model_loader.errors import (
    IntegrityError,
    LoaderError,
    NotFoundError,
    TransientError,
    UsageError,
)
from model_loader.logs import log
from model_loader.names import MANIFEST_NAME, RECORD_NAME, REPORT_NAME, version_prefix
from model_loader.retention import mark_used, trim
from model_loader.storage import blob_errors
from model_loader.store import BlobStore
from model_loader.trust import record_holds, stat_key, write_record

SWAP_ATTEMPTS = 3
NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL  # created by this call, or an error


@dataclass(frozen=True)
class FetchReport:
    """Written as fetch-report.json next to the model for the app to expose as metrics."""

    name: str
    version: str
    digest: str
    bytes: int
    files: int
    seconds: float
    cache_hit: bool
    fetched_at: str
    bytes_fetched: int = 0  # downloaded by this fetch
    bytes_reused: int = 0  # found in the content store

    def write(self, directory: Path) -> None:
        body = json.dumps(asdict(self), indent=2, sort_keys=True)  # pragma: no mutate (layout)
        (directory / REPORT_NAME).write_text(body + "\n")


def read_remote_manifest(
    container: ContainerClient, name: str, version: str, pinned: str | None = None
) -> tuple[manifests.Manifest, bytes, str]:
    """The version's manifest, its exact bytes and its digest; NotFoundError when absent,
    IntegrityError when it is too large, invalid, or its digest is not the `pinned` one.
    Reads at most one byte more than a manifest may have, whatever the blob's size."""
    blob_name = version_prefix(name, version) + MANIFEST_NAME
    what = f"{container.container_name}/{blob_name}"
    try:
        with blob_errors(what):
            stream = container.get_blob_client(blob_name).download_blob(
                offset=0, length=manifests.MAX_MANIFEST_BYTES + 1
            )
            raw = manifests.within_limit(stream.readall(), what)
    except NotFoundError:
        raise NotFoundError(f"{what}: model {name} version {version} is not published") from None
    digest = manifests.digest_of(raw)
    if pinned and digest != pinned:
        raise IntegrityError(f"{what}: digest {digest} differs from the pinned {pinned}")
    manifest = manifests.parse(raw, what)
    if (manifest.name, manifest.version) != (name, version):
        raise IntegrityError(f"{what}: manifest is for {manifest.name}/{manifest.version}")
    return manifest, raw, digest


def verify_installed(
    directory: Path, identity: tuple[str, str] | None = None, pinned: str | None = None
) -> tuple[manifests.Manifest, str]:
    """Offline check of an installed version; returns its manifest and digest. With a pin,
    the manifest's digest is compared before any file is hashed; with an `identity`
    (name, version), the manifest must be that version's."""
    manifest, digest = read_installed(directory, identity, pinned)
    manifests.verify_files(directory, manifest)
    return manifest, digest


def read_installed(
    directory: Path, identity: tuple[str, str] | None = None, pinned: str | None = None
) -> tuple[manifests.Manifest, str]:
    """An installed version's manifest and digest, checked against the pin and identity;
    no file is hashed."""
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise NotFoundError(f"{manifest_path}: no manifest, not an installed model version")
    raw = manifests.read_file(manifest_path)
    digest = manifests.digest_of(raw)
    if pinned and digest != pinned:
        raise IntegrityError(f"{manifest_path}: digest {digest} differs from the pinned {pinned}")
    manifest = manifests.parse(raw, str(manifest_path))
    if identity and (manifest.name, manifest.version) != identity:
        raise IntegrityError(
            f"{manifest_path}: is for {manifest.name}/{manifest.version}, not {'/'.join(identity)}"
        )
    return manifest, digest


def fetch(
    container: ContainerClient,
    name: str,
    version: str,
    dest_root: Path,
    digest: str | None,
    transfer: TransferSettings,
    cache: CacheSettings | None = None,
) -> FetchReport:
    """Install name/version under dest_root, or do nothing when it is already there verified
    (a cache hit needs no write, so it works on a read-only volume); then trim the root."""
    cache = cache or CacheSettings.from_env()
    report = _install(container, name, version, dest_root, digest, transfer, cache.verify)
    target = dest_root / name / version
    mark_used(target)
    try:
        trim(dest_root, name, version, cache.keep, cache.max_bytes)
    except OSError as exc:  # the version is installed: a trim that fails costs only space
        log("cache trim failed", path=exc.filename or str(dest_root), reason=exc.strerror)
    return report


def _install(container, name, version, dest_root, digest, transfer, verify) -> FetchReport:
    started = time.monotonic()
    target = dest_root / name / version
    cached = _cache_hit(target, name, version, digest, verify)
    if cached:
        manifest, cached_digest, trusted = cached
        log(
            "cache hit",
            name=name,
            version=version,
            digest=cached_digest,
            trusted=trusted,
            path=str(target),
        )
        return _report(manifest, cached_digest, started, cache_hit=True)

    manifest, raw, remote_digest = read_remote_manifest(container, name, version, digest)
    log(
        "fetch start",
        name=name,
        version=version,
        digest=remote_digest,
        files=len(manifest.files),
        bytes=manifest.total_bytes,
    )

    store = BlobStore(dest_root, trust_stat=verify == "stat")
    _remove_leftovers(target)
    store.remove_leftovers()
    missing = store.missing_bytes(manifest.files)
    copies = _device(target.parent) != _device(store.directory)
    _check_space(
        target,
        {
            target.parent: len(raw) + (manifest.total_bytes if copies else 0),
            store.directory: missing,
        },
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    store.directory.mkdir(parents=True, exist_ok=True)
    with _staging(target) as staging:
        progress = Progress(missing, transfer.progress_seconds)
        landed, fetched = _build_all(
            container, name, version, manifest, staging, store, transfer, progress
        )
        (staging / MANIFEST_NAME).write_bytes(raw)
        report = _report(manifest, remote_digest, started, cache_hit=False, fetched=fetched)
        report.write(staging)
        write_record(staging, remote_digest, landed)
        _verify_staging(staging, manifest, landed)
        won = _move_into_place(staging, target, name, version, remote_digest)
    if not won:
        log(
            "installed by another fetch first, verified",
            name=name,
            path=str(target),
            bytes_fetched=report.bytes_fetched,
            bytes_reused=report.bytes_reused,
        )
        return report  # what this fetch moved (a prefetcher's metrics), not the winner's
    log(
        "fetch done",
        name=name,
        version=version,
        digest=remote_digest,
        bytes=report.bytes,
        bytes_fetched=report.bytes_fetched,
        bytes_reused=report.bytes_reused,
        seconds=report.seconds,
        mb_per_s=progress.rate(),
        path=str(target),
    )
    return report


def _cache_hit(
    target: Path, name: str, version: str, digest: str | None, verify: str
) -> tuple[manifests.Manifest, str, str] | None:
    """The installed version's manifest, digest and how it was trusted (README, "Trusting
    a cache hit"): `stat` when its record holds, else (or with verify `full`) every file's
    sha256, after which the record is written again where the volume allows."""
    if not (target / MANIFEST_NAME).is_file():
        return None
    try:
        manifest, installed = read_installed(target, (name, version), digest)
        if verify == "stat" and record_holds(target, manifest, installed):
            return manifest, installed, "stat"
        before = _stats(target, manifest)
        manifests.verify_files(target, manifest)
    except LoaderError as exc:
        log("installed copy fails verification, fetching again", reason=str(exc))
        return None
    after = _stats(target, manifest)
    if before and _keys(before) == _keys(after):  # the stats describe the files hashed
        with contextlib.suppress(OSError):  # a read-only volume: hashed again next time
            write_record(target, installed, after)
    return manifest, installed, "full"


def _stats(directory: Path, manifest: manifests.Manifest) -> dict[str, os.stat_result]:
    try:
        return {e.path: os.stat(directory / e.path, follow_symlinks=False) for e in manifest.files}
    except OSError:
        return {}


def _keys(stats: dict[str, os.stat_result]) -> dict[str, list[int]]:
    return {path: stat_key(stat) for path, stat in stats.items()}


def _check_space(target: Path, needs: dict[Path, int]) -> None:
    """UsageError, before anything is written, when what the version adds (`needs`: bytes
    per directory: the files the store lacks, the manifest, copies where the store is on
    another filesystem) can't fit the free space of each filesystem (os.statvfs of each
    directory's nearest existing one, as an unprivileged user may use it). Dead fetches'
    leftovers are removed before this, so their space counts as free; what a live concurrent
    fetch has yet to write does not count against it, nor does a sizeLimit the filesystem
    can't show, nor copies made where links fail on one filesystem (some SMB mounts)."""
    filesystems: dict[int, tuple[Path, int]] = {}
    for directory, count in needs.items():
        where = _nearest_directory(directory)
        device = os.stat(where).st_dev
        first, needed = filesystems.get(device, (where, 0))
        filesystems[device] = (first, needed + count)
    for where, needed in filesystems.values():
        stats = os.statvfs(where)
        free = stats.f_bavail * stats.f_frsize
        if needed > free:
            version = f"{target.parent.name}/{target.name}"
            raise UsageError(
                f"{where}: {version} needs {needed} bytes, {free} bytes are free there"
            )


def _nearest_directory(path: Path) -> Path:
    while not path.is_dir():
        path = path.parent
    return path


def _device(path: Path) -> int:
    return os.stat(_nearest_directory(path)).st_dev


def _build_all(
    container, name, version, manifest, staging, store, transfer, progress
) -> tuple[dict[str, os.stat_result], int]:
    """Every file into staging (its directories made first) from the store, which downloads
    what it lacks; each file's stat when verified, and the bytes downloaded."""
    for entry in manifest.files:
        (staging / entry.path).parent.mkdir(parents=True, exist_ok=True)
    prefix = version_prefix(name, version)

    def place(entry: manifests.FileEntry) -> tuple[os.stat_result, bool]:
        def download(temp: Path) -> None:
            download_file(container, prefix + entry.path, entry, temp, transfer, progress)

        return store.place(entry, staging / entry.path, download)

    with ThreadPoolExecutor(transfer.file_concurrency, thread_name_prefix="fetch") as pool:
        futures = {entry: pool.submit(place, entry) for entry in manifest.files}
        try:
            placed = {entry: future.result() for entry, future in futures.items()}
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    fetched = sum(entry.size for entry, (_, downloaded) in placed.items() if downloaded)
    return {entry.path: landed for entry, (landed, _) in placed.items()}, fetched


def _verify_staging(
    staging: Path, manifest: manifests.Manifest, landed: dict[str, os.stat_result]
) -> None:
    """The staging directory as a whole, right before the rename: exactly the manifest's
    files (plus manifest.json and the report), each still the very file that was hashed when
    it landed (same inode, size and mtime: the sha256 checked then is this file's)."""
    files = {entry.path for entry in manifest.files}
    directories = {str(parent) for path in files for parent in PurePosixPath(path).parents}
    expected = files | (directories - {"."}) | {MANIFEST_NAME, REPORT_NAME, RECORD_NAME}
    found = {
        (Path(root) / name).relative_to(staging).as_posix()
        for root, subdirectories, names in os.walk(staging)
        for name in subdirectories + names
    }
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise IntegrityError(
            f"{staging}: changed under this fetch (missing {missing}, extra {extra})"
        )
    for entry in manifest.files:
        now = os.stat(staging / entry.path, follow_symlinks=False)
        then = landed[entry.path]
        if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
            then.st_dev,
            then.st_ino,
            entry.size,
            then.st_mtime_ns,
        ):
            raise IntegrityError(f"{staging / entry.path}: changed after it was verified")


def _move_into_place(staging: Path, target: Path, name: str, version: str, digest: str) -> bool:
    """Rename the verified staging dir to target (atomic); True if this fetch installed it.
    When target is there already: another fetch's verified install of the same digest wins
    (False); anything else (an invalid or other copy) is moved aside and replaced."""
    retired = []
    try:
        for _ in range(SWAP_ATTEMPTS):
            try:
                staging.rename(target)
                return True
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            try:
                verify_installed(target, (name, version), digest)
                return False
            except LoaderError as exc:
                log("replacing the installed copy", path=str(target), reason=str(exc))
            aside = target.parent / f".{target.name}.retired-{_unique()}"
            retired.append(aside)
            with contextlib.suppress(FileNotFoundError):  # another fetch moved it first
                target.rename(aside)
    finally:
        for path in retired:
            shutil.rmtree(path, ignore_errors=True)
    raise TransientError(f"{target}: replaced by other fetches {SWAP_ATTEMPTS} times running")


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A new staging directory owned by this process (see the module's docstring); removed
    on the way out unless it was renamed into place, and only then unlocked."""
    while True:
        path = target.parent / f".{target.name}.partial-{_unique()}"
        lock = Path(f"{path}.lock")
        fd = os.open(lock, NEW_FILE, 0o644)  # pragma: no mutate (any mode will do)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if lock.exists():
            break
        os.close(fd)  # a cleaner locked it before we did and unlinked it: take another
    try:
        path.mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)


def _unique() -> str:
    return uuid.uuid4().hex[:12]  # pragma: no mutate (any length of random id will do)


def _remove_leftovers(target: Path) -> None:
    """Staging dirs of fetches that died (their lock can be taken), with their lock files,
    and old copies a killed fetch moved aside. A live fetch's staging dir is never touched."""
    for leftover in target.parent.glob(f".{target.name}.retired-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staged = {
        str(path).removesuffix(".lock") for path in target.parent.glob(f".{target.name}.partial-*")
    }
    for path in map(Path, staged):
        with _owner_gone(Path(f"{path}.lock")) as gone:
            if gone:
                shutil.rmtree(path, ignore_errors=True)
                Path(f"{path}.lock").unlink(missing_ok=True)


@contextlib.contextmanager
def _owner_gone(lock: Path) -> Iterator[bool]:
    """True (holding the lock meanwhile) when no live process holds `lock`; a staging dir
    without a lock file has no owner either (owners remove the lock file last)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    try:
        yield _try_lock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _report(
    manifest: manifests.Manifest, digest: str, started: float, cache_hit: bool, fetched: int = 0
):
    elapsed = time.monotonic() - started
    return FetchReport(
        name=manifest.name,
        version=manifest.version,
        digest=digest,
        bytes=manifest.total_bytes,
        files=len(manifest.files),
        seconds=round(elapsed, 3),  # pragma: no mutate (ms are plenty)
        cache_hit=cache_hit,
        fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        bytes_fetched=fetched,
        bytes_reused=0 if cache_hit else manifest.total_bytes - fetched,
    )

"""Streaming, verified downloads: parallel ranges per blob, hashed in order as they land."""

import hashlib
import os
import queue
import threading
import time
from pathlib import Path

from azure.storage.blob import ContainerClient

from model_loader.config import TransferSettings
from model_loader.errors import IntegrityError
from model_loader.logs import log
from model_loader.manifest import HASH_BLOCK, FileEntry
from model_loader.storage import blob_errors


class HashingFile:
    """A seekable writer for the SDK's parallel readinto(): writes each range at its offset
    under the SDK's stream lock, while a thread of its own reads the file back (from the page
    cache) and feeds sha256 in file order outside that lock. No downloaded chunk is kept
    alive for hashing, so memory stays bounded whatever the blob size."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._position = 0
        self._contiguous_to = 0
        self._pending: dict[int, int] = {}  # offset -> length, written but not yet in order
        self._to_hash: queue.SimpleQueue = queue.SimpleQueue()  # (offset, length) in order
        self.sha256 = hashlib.sha256()
        self._hasher = threading.Thread(
            target=self._hash_in_order,
            daemon=True,  # pragma: no mutate (close() joins it)
        )
        self._hasher.start()

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise ValueError("only absolute seeks are supported")
        self._position = offset
        return offset

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        offset = self._position
        done = 0
        while done < len(view):
            # Short only as the disk fills, and then the next call raises ENOSPC.
            done += os.pwrite(self._fd, view[done:], offset + done)  # pragma: no mutate
        self._pending[offset] = done
        while self._contiguous_to in self._pending:
            length = self._pending.pop(self._contiguous_to)
            self._to_hash.put((self._contiguous_to, length))
            self._contiguous_to += length
        self._position += done
        return done

    def _hash_in_order(self) -> None:
        while (item := self._to_hash.get()) is not None:
            offset, remaining = item
            while remaining:
                block = os.pread(self._fd, min(remaining, HASH_BLOCK), offset)
                if not block:
                    return  # the file shrank under us: the digest will not match
                self.sha256.update(block)
                offset += len(block)
                remaining -= len(block)

    def close(self) -> None:
        """Let the hasher finish what was written; call before closing the file."""
        if self._hasher.is_alive():
            self._to_hash.put(None)
            self._hasher.join()

    def hexdigest(self) -> str:
        self.close()
        if self._pending:
            raise IntegrityError("download left a gap in the file")
        return self.sha256.hexdigest()


class Progress:
    """Thread-safe byte counter that logs bytes and MB/s at most every `interval` seconds."""

    def __init__(self, total: int, interval: float) -> None:
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self._last_log = self.started
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last_log < self.interval:
                return
            self._last_log = now
            log("progress", bytes=self.done, total=self.total, mb_per_s=self.rate())

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        return round(self.done / 1e6 / max(self.seconds(), 1e-9), 1)


def download_file(
    container: ContainerClient,
    blob_name: str,
    entry: FileEntry,
    destination: Path,
    transfer: TransferSettings,
    progress: Progress,
) -> os.stat_result:
    """Stream one blob to `destination` (its directory must exist), check its size and sha256
    against the manifest; returns the file's stat as it was when verified, so that the
    caller can tell later that the file at that path is still the one that was hashed."""
    what = f"{container.container_name}/{blob_name}"
    reported = 0

    def on_progress(current: int, _total: int | None) -> None:
        nonlocal reported
        progress.add(current - reported)
        reported = current

    fd = os.open(destination, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    sink = HashingFile(fd)
    try:
        with blob_errors(what):
            stream = container.get_blob_client(blob_name).download_blob(
                max_concurrency=transfer.range_concurrency, progress_hook=on_progress
            )
            if stream.size != entry.size:
                raise IntegrityError(
                    f"{what}: blob is {stream.size} bytes, manifest says {entry.size}"
                )
            stream.readinto(sink)
        landed = os.fstat(fd)
    except OSError as exc:
        if exc.filename is None:  # a write failed (the disk filled up): say where
            exc.filename = str(destination)
        raise
    finally:
        sink.close()
        os.close(fd)
    if sink.hexdigest() != entry.sha256:
        raise IntegrityError(f"{what}: sha256 differs from the manifest (corrupted or replaced)")
    return landed

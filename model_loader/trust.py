"""The stat record: how an installed version is trusted at a cache hit without hashing it.

A fetch writes `.verified.json` into its staging directory only after every file's sha256
matched the manifest, and renames it into place with the version. It holds the manifest's
digest and, per file, (size, inode, mtime_ns). At a cache hit under the `stat` rule a
version is trusted when every file still has the recorded size, inode and mtime: any write
through the filesystem moves the mtime, a replaced file has another inode. Anything else
(no record, another digest, one differing file) falls back to hashing every file.

Not in the record: ctime, since adding or removing a hard link to a stored file (another
version installed or trimmed) and ownership changes by a volume driver move it; so a writer
that restores a file's mtime with utime(2), or one that changes a file within the clock
tick of its last write, goes unseen. The loader is the volume's only writer (the app mounts
it read-only); where other writers on the node are a concern, `verify: full` hashes every
file at every start.
"""

import json
import os
from pathlib import Path
from stat import S_ISREG

from model_loader.manifest import Manifest
from model_loader.names import RECORD_NAME


def stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_ino, stat.st_mtime_ns]


def write_record(directory: Path, digest: str, stats: dict[str, os.stat_result]) -> None:
    """The record of a version whose files (`stats`, by manifest path) were all verified."""
    files = {path: stat_key(stat) for path, stat in sorted(stats.items())}
    body = json.dumps({"digest": digest, "files": files}, separators=(",", ":"))
    temp = directory / f"{RECORD_NAME}.tmp"
    temp.write_text(body + "\n")
    temp.rename(directory / RECORD_NAME)


def record_holds(directory: Path, manifest: Manifest, digest: str) -> bool:
    """True when the record is the manifest's and every file still has its recorded stat."""
    try:
        record = json.loads((directory / RECORD_NAME).read_bytes())
        files = record["files"]
        if record["digest"] != digest or set(files) != {e.path for e in manifest.files}:
            return False
        for entry in manifest.files:
            now = os.stat(directory / entry.path, follow_symlinks=False)
            if not S_ISREG(now.st_mode) or now.st_size != entry.size:
                return False
            if stat_key(now) != files[entry.path]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True

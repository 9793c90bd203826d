"""Will the model fit the container's memory? Checked by the master before it forks a worker.

Every gunicorn worker loads its own copy of the model, all of them at once at start, and the
container's memory limit (its cgroup) holds them all plus the master. The estimate:

    MASTER_BYTES + workers x (LOAD_FACTOR x model bytes + WORKER_BYTES)

calibrated on real workers (README "Model loading"; tests/app/test_memory.py measures it):
while onnxruntime builds a session, the model's protobuf and the tensors made from it are both
in memory, so a worker peaks at about twice the model's size above its baseline (Python,
Flask, numpy, onnxruntime). The model's size is the sum of the files its manifest lists; the
manifest is read from the volume, so a model not installed yet is not checked (its workers
then stay up, not ready, and say why). This is the floor for loading the model: requests add
their own tensors on top, with each worker's threads and MAX_BATCH_SIZE.
"""

import json
from pathlib import Path

from app.config import Settings
from app.model import MANIFEST

MIB = 2**20
LOAD_FACTOR = 2
WORKER_BYTES = 96 * MIB  # measured: 71 MiB with the sample model, after a c=64 load
MASTER_BYTES = 64 * MIB  # measured: 47 MiB
# cgroup v1 writes "no limit" as the largest page-aligned count, 9223372036854771712.
UNLIMITED = 2**62


class MemoryTooSmall(Exception):
    """The model can't be loaded by every worker within the container's memory limit."""


def memory_limit(cgroup_root: Path) -> int | None:
    """The container's memory limit in bytes (cgroup v2, else v1); None when there is none
    or it can't be read."""
    return _read_limit(cgroup_root)[0]


def _read_limit(cgroup_root: Path) -> tuple[int | None, Path | None]:
    for path in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        try:
            limit = int(raw)
        except ValueError:  # "max": no limit
            return None, path
        return (limit if 0 < limit < UNLIMITED else None), path
    return None, None


def model_bytes(model_dir: Path) -> int | None:
    """The sum of the file sizes the installed manifest lists; None when there is no readable
    manifest (not installed yet, or broken: the workers report that)."""
    try:
        files = json.loads((model_dir / MANIFEST).read_bytes())["files"]
        sizes = [entry["size"] for entry in files]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(type(size) is int and size >= 0 for size in sizes):
        return None
    return sum(sizes)


def needed_bytes(model_size: int, workers: int) -> int:
    """The memory the master and its workers need to load a model of `model_size` bytes."""
    return MASTER_BYTES + workers * (LOAD_FACTOR * model_size + WORKER_BYTES)


def check_memory(settings: Settings) -> None:
    """Raise MemoryTooSmall, one line saying what to change, if the model can't fit."""
    config = settings.app
    limit, source = _read_limit(settings.cgroup_root)
    size = model_bytes(config.model_dir)
    if limit is None or size is None:
        return
    needed = needed_bytes(size, settings.workers)
    if needed <= limit:
        return
    raise MemoryTooSmall(
        f"model {config.model_name}/{config.model_version} needs about {needed / MIB:.0f} MiB "
        f"with {settings.workers} workers ({MASTER_BYTES // MIB} MiB + {settings.workers} x "
        f"({LOAD_FACTOR} x {size / MIB:.1f} MiB of model + {WORKER_BYTES // MIB} MiB)), over "
        f"the container's memory limit of {limit / MIB:.0f} MiB ({source}); raise the limit "
        "(the chart's app.resources.limits.memory) or lower WEB_CONCURRENCY (app.workers)"
    )

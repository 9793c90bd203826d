"""gunicorn settings for the inference service, from the environment the chart sets.

python -m app.server -c app/gunicorn.conf.py 'app:create_app()'
"""

import os
import shutil
from pathlib import Path

from app.server import draining


def available_cpus() -> int:
    """CPUs this container may use: the cgroup quota if any, else the affinity mask."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


_cpus = available_cpus()

bind = f"{os.environ.get('APP_HOST', '0.0.0.0')}:{os.environ.get('APP_PORT', '8080')}"
# Inference is CPU-bound: one worker per CPU, a few threads each to overlap request I/O.
workers = int(os.environ.get("WEB_CONCURRENCY", _cpus))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = 2048
# Read-only root filesystem: heartbeat files in memory, no control socket in $HOME.
worker_tmp_dir = "/dev/shm"
control_socket_disable = True
# onnxruntime threads per worker so that workers x threads never oversubscribe the CPUs.
raw_env = [
    f"ORT_INTRA_OP_THREADS={os.environ.get('ORT_INTRA_OP_THREADS', max(1, _cpus // workers))}"
]

accesslog = "-"
errorlog = "-"
logger_class = "app.gunicorn_logging.JsonAccessLogger"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["plain"], "propagate": False},
    },
    "formatters": {
        "json": {"()": "app.logs.JsonFormatter"},
        "plain": {"format": "%(message)s"},  # access lines are JSON already
    },
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
        "plain": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
}


def on_starting(server) -> None:
    """PROMETHEUS_MULTIPROC_DIR must start empty: an emptyDir survives container restarts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def pre_request(worker, req) -> None:
    """While draining (see app/server.py), each response closes its kept-alive connection."""
    if draining():
        req.force_close()


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

"""gunicorn settings for the inference service, from the environment the chart sets.

python -m app.server -c app/gunicorn.conf.py 'app:create_app()'
"""

import shutil
import sys

from prometheus_client import multiprocess

from app import connection, metrics
from app.config import settings
from app.drain import draining
from app.server import PROG

_settings = settings()  # read and checked by `python -m app.server` before gunicorn started

bind = _settings.bind
# Inference is CPU-bound: one worker per CPU, a few threads each to overlap request I/O.
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
backlog = 2048
# Read-only root filesystem: heartbeat files in memory, no control socket in $HOME.
worker_tmp_dir = "/dev/shm"
control_socket_disable = True

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
    directory = _settings.app.metrics_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for child in directory.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    except OSError as error:
        _refuse(f"PROMETHEUS_MULTIPROC_DIR={str(directory)!r}: {error.strerror}")


def when_ready(server) -> None:
    """Before the first fork, the master serves the workers' metrics on METRICS_PORT, from a
    daemon thread. Workers are forked with that thread alive; it holds no lock a worker could
    inherit locked (prometheus_client's handler logs nothing, the collector only reads files)."""
    host, port = _settings.metrics_bind
    try:
        server.metrics_server = metrics.serve(_settings.app.metrics_dir, host, port)
    except OSError as error:
        _refuse(f"METRICS_PORT={port}: cannot listen on {host}:{port}: {error.strerror}")
    server.log.info("Metrics at: http://%s:%s/metrics", host, port)


def post_fork(server, worker) -> None:
    """A worker closes its copy of the master's metrics listener: only the master answers."""
    server.metrics_server.socket.close()


def _refuse(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def pre_request(worker, req) -> None:
    """While draining (see app/arbiter.py), each response closes its kept-alive connection;
    the app may close one too (app/connection.py)."""
    connection.serving(req)
    if draining():
        req.force_close()


def child_exit(server, worker) -> None:
    """A dead worker's live series (aiapp_worker_up) go with it, however it died."""
    multiprocess.mark_process_dead(worker.pid)

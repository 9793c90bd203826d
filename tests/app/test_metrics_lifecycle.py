"""Metrics across a pod's life: the multiprocess directory is wiped at start (an emptyDir
outlives a container), a worker that dies takes its live series with it, and the batch-size
histogram moves by each request's batch."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from app import create_app
from tests.support.gunicorn_server import GunicornServer

# A counter of ours written the way a previous container's worker left it.
STALE = """
from prometheus_client import Counter
requests = Counter("aiapp_http_requests", "", ["route", "method", "status"])
requests.labels("/stale", "GET", "200").inc(7)
"""
# What a scrape of that directory shows.
SHOW = """
import os
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
print(generate_latest(registry).decode())
"""


def scrape(server: GunicornServer) -> str:
    return requests.get(server.metrics_url + "/metrics", timeout=10).text


def live_worker_pids(text: str) -> set[int]:
    return {int(pid) for pid in re.findall(r'^aiapp_worker_up\{pid="(\d+)"\} 1\.0$', text, re.M)}


def until(condition, what: str, seconds: float = 60):
    """condition()'s first truthy value, polled for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


def every_worker_loaded(server: GunicornServer) -> str | None:
    """The scrape once each forked worker has built its app (and so reports itself)."""
    return reporting(server, set(server.worker_pids()))


def reporting(server: GunicornServer, pids: set[int]) -> str | None:
    """The scrape once every one of `pids` reports itself."""
    text = scrape(server)
    return text if pids <= live_worker_pids(text) else None


@pytest.mark.slow
def test_a_previous_runs_metrics_files_are_wiped_at_start(sample, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", STALE], env=env, check=True, timeout=60)
    stale = sorted(p.name for p in directory.iterdir())
    shown = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    )
    assert stale and 'route="/stale"' in shown.stdout  # what the server would show, unwiped

    with GunicornServer({**sample["env"], "PROMETHEUS_MULTIPROC_DIR": str(directory)}) as server:
        text = until(lambda: every_worker_loaded(server), "both workers reporting")
        left = sorted(p.name for p in directory.iterdir())

    assert 'route="/stale"' not in text
    assert not set(stale) & set(left)


@pytest.mark.slow
def test_a_killed_workers_live_series_is_dropped_and_its_successor_counted(sample):
    with GunicornServer(sample["env"], workers=2) as server:
        until(lambda: every_worker_loaded(server), "both workers reporting")
        workers = set(server.worker_pids())
        killed = min(workers)

        os.kill(killed, signal.SIGKILL)
        # The master reaps the dead worker (child_exit) before it forks the successor.
        successor = until(lambda: set(server.worker_pids()) - workers, "a successor forked")
        text = until(lambda: reporting(server, successor), "the successor reporting")

        assert len(successor) == 1
        assert live_worker_pids(text) == (workers - {killed}) | successor


def test_the_batch_size_histogram_moves_by_each_requests_batch(config, sample):
    client = create_app(config).test_client()
    registry = client.application.extensions["aiapp"].metrics.registry

    def histogram() -> dict[str, float]:
        name = "aiapp_inference_batch_size"
        return {
            "count": registry.get_sample_value(f"{name}_count"),
            "sum": registry.get_sample_value(f"{name}_sum"),
            "le 2": registry.get_sample_value(f"{name}_bucket", {"le": "2.0"}),
            "le 4": registry.get_sample_value(f"{name}_bucket", {"le": "4.0"}),
            "le 8": registry.get_sample_value(f"{name}_bucket", {"le": "8.0"}),
        }

    rows = sample["x_test"]
    before = histogram()
    predicted = client.post("/predict", json={"instances": rows[:3].tolist()})
    inputs = [{"name": "pixels", "datatype": "FP32", "shape": [5, 64], "data": rows[:5].tolist()}]
    inferred = client.post("/v2/models/digits/infer", json={"inputs": inputs})
    after = histogram()

    assert (predicted.status_code, inferred.status_code) == (200, 200)
    moved = {key: after[key] - before[key] for key in after}
    assert moved == {"count": 2, "sum": 8, "le 2": 0, "le 4": 1, "le 8": 2}

"""Metrics are served by the gunicorn master on a port of their own (METRICS_PORT), never on
the public one: a scrape neither queues behind inference nor needs a worker."""

import os
import signal
import socket
import time

import pytest
import requests

from local.net import free_port
from tests.app.test_metrics_lifecycle import live_worker_pids
from tests.support.gunicorn_server import GunicornServer, run_to_exit

pytestmark = pytest.mark.slow


def test_metrics_are_on_their_own_port_and_not_on_the_public_one(gunicorn):
    requests.get(gunicorn.url + "/v2/models/digits", timeout=10)

    public = requests.get(gunicorn.url + "/metrics", timeout=10)
    scrape = requests.get(gunicorn.metrics_url + "/metrics", timeout=10)

    assert public.status_code == 404 and "error" in public.json()
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain; version=")
    assert 'aiapp_model_info{digest="' in scrape.text
    assert 'route="/v2/models/<name>",status="200"' in scrape.text


def test_the_openapi_document_stays_public_and_lists_no_metrics_route(gunicorn):
    document = requests.get(gunicorn.url + "/openapi.json", timeout=10)

    assert document.status_code == 200
    assert "/v2/models/{name}/infer" in document.json()["paths"]
    assert "/metrics" not in document.json()["paths"]
    assert requests.get(gunicorn.metrics_url + "/openapi.json", timeout=10).text.startswith(
        "# HELP"
    )  # the metrics port serves metrics and nothing else


def wait_for_every_worker_ready(server: GunicornServer, workers: int, timeout: float = 30) -> None:
    """aiapp_model_ready is the minimum over the workers that have built their app: 1 once
    each of `workers` reports itself (aiapp_worker_up) and has loaded the model. A forked
    worker that hasn't built its app yet has no value in that minimum."""
    deadline = time.monotonic() + timeout
    while True:
        text = requests.get(server.metrics_url + "/metrics", timeout=5).text
        if len(live_worker_pids(text)) == workers and "aiapp_model_ready 1.0" in text:
            return
        assert time.monotonic() < deadline, "the workers never all loaded the model"
        time.sleep(0.1)


def test_a_scrape_answers_while_every_worker_is_stopped(sample):
    with GunicornServer(sample["env"], workers=2) as server:
        wait_for_every_worker_ready(server, workers=2)
        workers = server.worker_pids()
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(requests.Timeout):  # no worker takes a request now
                requests.get(server.url + "/v2/health/live", timeout=1)
            scrape = requests.get(server.metrics_url + "/metrics", timeout=5)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)

    assert scrape.status_code == 200
    assert "aiapp_model_ready 1.0" in scrape.text


def test_a_metrics_port_in_use_stops_the_master_before_any_worker(sample, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **sample["env"],
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(free_port()),
            "METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        }
        exit_code, output = run_to_exit(env, tmp_path)

    assert exit_code == 2, output[-2000:]
    assert output.strip().splitlines()[-1] == (
        f"ai-app-server: error: METRICS_PORT={port}: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )
    assert "Traceback" not in output and "Booting worker" not in output

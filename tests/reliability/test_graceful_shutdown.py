"""SIGTERM under steady load: readiness fails first, the listener closes later, and every
request the server accepted completes (no reset, no 5xx)."""

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest
import requests

from tests.support.gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow

DRAIN_SECONDS = 3.0
LOAD_BALANCER_REACTION = 1.0  # how long after readiness fails the "LB" still sends traffic
CLIENTS = 8


@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None  # None: the request failed at the connection level
    error: str = ""
    closes: bool = False  # the response said "Connection: close"


@dataclass
class LoadBalancer:
    """Stands in for a cloud LB: probes readiness, keeps sending until it has seen a 503
    for LOAD_BALANCER_REACTION seconds, then stops routing to this server."""

    url: str
    body: dict
    outcomes: list[Outcome] = field(default_factory=list)
    not_ready_at: float | None = None
    not_ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def probe(self) -> None:
        while not self.stop.is_set():
            try:
                status = requests.get(self.url + "/v2/health/ready", timeout=2).status_code
            except requests.RequestException:
                status = None
            if status == 503 and self.not_ready_at is None:
                self.not_ready_at = time.monotonic()
                self.not_ready.set()
            if self.not_ready_at and time.monotonic() > self.not_ready_at + LOAD_BALANCER_REACTION:
                self.stop.set()
            time.sleep(0.1)

    def client(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(self.url + "/predict", json=self.body, timeout=30)
                outcome = Outcome(
                    started,
                    time.monotonic(),
                    response.status_code,
                    closes=response.headers.get("Connection", "").lower() == "close",
                )
            except requests.RequestException as error:
                outcome = Outcome(started, time.monotonic(), None, repr(error))
            self.outcomes.append(outcome)


def wait_for_log(server: GunicornServer, text: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.logs():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never logged: {server.logs()[-2000:]}")


def wait_for_worker_connection(server: GunicornServer, client_port: int, timeout: float) -> None:
    """Until a worker holds the connection from client_port: its request is in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in server.worker_pids():
            if any(
                c.raddr and c.raddr.port == client_port
                for c in psutil.Process(pid).net_connections("tcp")
            ):
                return
        time.sleep(0.02)
    raise AssertionError(f"no worker accepted the connection from port {client_port}")


def start_slow_request(port: int, body: bytes) -> http.client.HTTPConnection:
    """A client that sends half of its body now: a request in flight until it sends the rest."""
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    slow.putrequest("POST", "/predict")
    slow.putheader("Content-Type", "application/json")
    slow.putheader("Content-Length", str(len(body)))
    slow.endheaders(body[: len(body) // 2])
    return slow


def test_sigterm_drains_then_every_accepted_request_completes(sample):
    rows = sample["x_test"][:4].tolist()
    expected = sample["sklearn_model"].predict(sample["x_test"][:1]).tolist()
    body = json.dumps({"instances": sample["x_test"][:1].tolist()}).encode()
    with GunicornServer(
        {**sample["env"], "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)}, workers=2
    ) as server:
        balancer = LoadBalancer(server.url, {"instances": rows})
        threads = [threading.Thread(target=balancer.client, daemon=True) for _ in range(CLIENTS)]
        threads.append(threading.Thread(target=balancer.probe, daemon=True))
        try:
            for thread in threads:
                thread.start()
            time.sleep(2)  # steady load

            sigterm_at = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)
            assert balancer.not_ready.wait(timeout=5), "readiness never answered 503 after SIGTERM"
            # A slow client: starts a request during the drain and sends the rest of its body
            # only once the master has closed the listeners: in flight across the stop.
            time.sleep(max(0.0, sigterm_at + DRAIN_SECONDS - 0.7 - time.monotonic()))
            slow = start_slow_request(server.port, body)
            closed_at = wait_for_log(server, "drained: closing the listeners", timeout=10)
            time.sleep(0.3)
            slow.send(body[len(body) // 2 :])
            slow_response = slow.getresponse()
            slow_status, slow_body = slow_response.status, json.loads(slow_response.read())
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads), "a client never finished"
            exit_code = server.process.wait(timeout=30)
            exited_at = time.monotonic()
        finally:
            balancer.stop.set()

    outcomes = balancer.outcomes
    in_flight = [o for o in outcomes if o.started < sigterm_at < o.finished]
    during_drain = [o for o in outcomes if o.started > balancer.not_ready_at]
    failed = [o for o in outcomes if o.status != 200]
    print(
        f"\nSHUTDOWN: {len(outcomes)} requests; in flight at SIGTERM {len(in_flight)}, "
        f"completed {sum(o.status == 200 for o in in_flight)}; readiness 503 after "
        f"{balancer.not_ready_at - sigterm_at:.2f}s; {len(during_drain)} requests served after "
        f"that ({sum(o.closes for o in during_drain)} with Connection: close); listeners "
        f"closed at {closed_at - sigterm_at:.2f}s; slow request {slow_status}; "
        f"exit {exit_code} at {exited_at - sigterm_at:.2f}s; failures {len(failed)}"
    )

    assert failed == [], failed[:5]
    assert in_flight, "no request was in flight at SIGTERM: the load was not steady"
    assert balancer.not_ready_at - sigterm_at < 0.5  # readiness fails at once
    assert closed_at - balancer.not_ready_at > DRAIN_SECONDS - 0.7  # ... long before the close
    assert during_drain and all(o.closes for o in during_drain)  # clients reconnect elsewhere
    assert slow_status == 200 and slow_body["predictions"] == expected
    assert exit_code == 0
    assert not server.logs().count("Traceback")


@pytest.mark.parametrize(
    ("drain_seconds", "first_term_logged"),
    [(60, "draining for 60.0s"), (0, "Handling signal: term")],
    ids=["during the drain", "during the graceful stop"],
)
def test_a_second_sigterm_stops_at_once_even_with_a_request_in_flight(
    sample, drain_seconds, first_term_logged
):
    """Neither the drain nor GUNICORN_GRACEFUL_TIMEOUT (60 s here) is waited for: a request
    still in flight is cut, the master exits within seconds."""
    body = json.dumps({"instances": sample["x_test"][:1].tolist()}).encode()
    env = {
        **sample["env"],
        "SHUTDOWN_DRAIN_SECONDS": str(drain_seconds),
        "GUNICORN_GRACEFUL_TIMEOUT": "60",
    }
    with GunicornServer(env, workers=1) as server:
        slow = start_slow_request(server.port, body)
        wait_for_worker_connection(server, slow.sock.getsockname()[1], timeout=5)
        os.kill(server.process.pid, signal.SIGTERM)
        wait_for_log(server, first_term_logged, timeout=5)
        if drain_seconds:
            assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
            assert requests.get(server.url + "/v2/health/live", timeout=5).status_code == 200
        else:  # the listeners are closed and the master waits for the slow request
            time.sleep(1)
            assert server.process.poll() is None, server.logs()[-2000:]

        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            exit_code = server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 10 s after the second SIGTERM: {server.logs()[-1500:]}")
        stopped_after = time.monotonic() - started
        slow.close()

    print(f"\nSECOND SIGTERM: master exited {exit_code} after {stopped_after:.2f}s")
    assert exit_code == 0
    assert stopped_after < 5

"""SIGTERM under steady load: readiness fails first, the listener closes later, and every
request the server accepted completes (no reset, no 5xx)."""

import http.client
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field

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
    stop: threading.Event = field(default_factory=threading.Event)

    def probe(self) -> None:
        while not self.stop.is_set():
            try:
                status = requests.get(self.url + "/v2/health/ready", timeout=2).status_code
            except requests.RequestException:
                status = None
            if status == 503 and self.not_ready_at is None:
                self.not_ready_at = time.monotonic()
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


def test_sigterm_drains_then_every_accepted_request_completes(sample):
    rows = sample["x_test"][:4].tolist()
    expected = sample["sklearn_model"].predict(sample["x_test"][:1]).tolist()
    with GunicornServer(
        {**sample["env"], "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)}, workers=2
    ) as server:
        balancer = LoadBalancer(server.url, {"instances": rows})
        threads = [threading.Thread(target=balancer.client) for _ in range(CLIENTS)]
        threads.append(threading.Thread(target=balancer.probe))
        for thread in threads:
            thread.start()
        time.sleep(2)  # steady load

        sigterm_at = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        # A slow client: starts a request during the drain and sends the rest of its body only
        # once the master has closed the listeners, so the request is in flight across the stop.
        time.sleep(DRAIN_SECONDS - 0.7)
        body = json.dumps({"instances": sample["x_test"][:1].tolist()}).encode()
        slow = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        slow.putrequest("POST", "/predict")
        slow.putheader("Content-Type", "application/json")
        slow.putheader("Content-Length", str(len(body)))
        slow.endheaders(body[: len(body) // 2])
        closed_at = wait_for_log(server, "drained: closing the listeners", timeout=10)
        time.sleep(0.3)
        slow.send(body[len(body) // 2 :])
        slow_response = slow.getresponse()
        slow_status, slow_body = slow_response.status, json.loads(slow_response.read())
        for thread in threads:
            thread.join(timeout=60)
        exit_code = server.process.wait(timeout=60)
        exited_at = time.monotonic()

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


def test_a_second_sigterm_stops_without_waiting_for_the_drain(sample):
    with GunicornServer({**sample["env"], "SHUTDOWN_DRAIN_SECONDS": "60"}, workers=1) as server:
        os.kill(server.process.pid, signal.SIGTERM)
        wait_for_log(server, "draining for 60.0s", timeout=5)
        assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(server.url + "/v2/health/live", timeout=5).status_code == 200

        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)

        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 10

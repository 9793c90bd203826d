"""Retries, counted and timed against real loopback servers that fail forever: a lasting
failure gets exactly MODEL_FETCH_RETRIES retries, whatever its kind, on the schedule the
README promises (retry n waits backoff + 1.5**n s, give or take backoff)."""

import json
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.azurite import Azurite
from local.net import free_port
from model_loader.config import TransferSettings
from model_loader.storage import retry_policy
from tests.support.loader_cli import LoaderRun, start_loader, wait_loader

BACKOFF = 0.1  # seconds; the jitter is +- this much
DEFAULT_RETRIES = 5  # what the README promises when MODEL_FETCH_RETRIES is unset
SLACK = 0.5  # seconds a loaded machine may add to one wait
SERVER_BUSY = b"<?xml version='1.0'?><Error><Code>ServerBusy</Code></Error>"


class FailingServer:
    """Answers every request with the same failure and records when each one arrived:
    `busy` answers 503 ServerBusy (throttling), `drop` closes the connection unanswered."""

    def __init__(self, kind: str) -> None:
        self.arrivals: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.arrivals.append(time.monotonic())
                if kind == "drop":
                    self.close_connection = True
                    return
                self.send_response_only(503, "Server Busy")
                self.send_header("x-ms-error-code", "ServerBusy")
                self.send_header("Content-Length", str(len(SERVER_BUSY)))
                self.end_headers()
                self.wfile.write(SERVER_BUSY)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                """The loader closing its side between retries is no error here."""

        self._http = Quiet(("127.0.0.1", 0), Handler)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def waits(self) -> list[float]:
        return [
            later - earlier
            for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False)
        ]

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


CASES = [(kind, retries) for kind in ("busy", "drop", "refused") for retries in (2, None)]


@pytest.fixture
def servers() -> Iterator[dict[tuple[str, int | None], FailingServer]]:
    """A failing server of its own for each counted case."""
    started = {(kind, retries): FailingServer(kind) for kind, retries in CASES if kind != "refused"}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def shortest_waits(retries: int) -> list[float]:
    """The least each retry n waits: backoff + 1.5**n, less backoff of jitter."""
    return [1.5**n for n in range(1, retries + 1)]


def run_until_done(cases: dict[object, dict[str, str]]) -> dict[object, tuple[LoaderRun, float]]:
    """`check` under each env, all at once; each outcome with the seconds from its first
    request (the loader logs "blob client" right before it) to its exit."""
    outcomes: dict[object, tuple[LoaderRun, float]] = {}

    def run(case: object, env: dict[str, str]) -> None:
        result = wait_loader(start_loader(env, "check", "--name", "busy", "--version", "1"))
        ended = time.time()
        first = next(
            json.loads(line) for line in result.stderr.splitlines() if "blob client" in line
        )
        started = datetime.strptime(first["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        outcomes[case] = (result, ended - started.timestamp())

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.slow
def test_a_lasting_failure_of_any_kind_gets_the_configured_retries_on_schedule(servers):
    """A 503 forever and a dropped connection (requests counted, waits timed at the server)
    and a refused connection (nothing listens, so nothing counts: timed from its log), each
    with MODEL_FETCH_RETRIES=2 and with the default, all at once."""
    envs = {}
    for kind, retries in CASES:
        port = servers[kind, retries].port if kind != "refused" else free_port()
        settings = {"MODEL_FETCH_BACKOFF_SECONDS": str(BACKOFF)}
        if retries is not None:
            settings["MODEL_FETCH_RETRIES"] = str(retries)
        envs[kind, retries] = Azurite(port=port).loader_env(**settings)

    outcomes = run_until_done(envs)

    assert set(outcomes) == set(CASES)
    for (kind, retries), (result, seconds) in outcomes.items():
        expected = DEFAULT_RETRIES if retries is None else retries
        least = shortest_waits(expected)
        assert result.returncode == 6, (kind, retries, result.stderr)
        assert "busy/1/manifest.json" in result.error_line
        if kind == "refused":
            # One more retry would add 1.5**(n+1) s or more: the bound stops short of that by
            # one wait's jitter and slack, and leaves the rest to a loaded machine's delays.
            most = sum(least) + 1.5 ** (expected + 1) - (2 * BACKOFF + SLACK)
            assert sum(least) <= seconds < most, (kind, retries, seconds)
            continue
        server = servers[kind, retries]
        assert len(server.arrivals) == expected + 1, (kind, retries, server.waits())
        for wait, shortest in zip(server.waits(), least, strict=True):
            assert shortest <= wait <= shortest + 2 * BACKOFF + SLACK, (kind, retries, wait)


def test_default_retry_n_waits_backoff_plus_1_5_to_the_n_with_half_a_second_of_jitter():
    """The default jitter (+-0.5 s) on many draws: too wide to time on a few real waits."""
    policy = retry_policy(TransferSettings())
    for retry, seconds in [(1, 2.0), (2, 2.75), (3, 3.875), (4, 5.5625), (5, 8.09375)]:
        waits = [policy.get_backoff_time({"count": retry}) for _ in range(400)]

        assert seconds - 0.5 <= min(waits) and max(waits) <= seconds + 0.5
        assert statistics.median(waits) == pytest.approx(seconds, abs=0.1)
        assert max(waits) - min(waits) > 0.5  # jittered, not fixed

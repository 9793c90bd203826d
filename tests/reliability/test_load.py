"""Sustained load on gunicorn with the sample model: no errors, no restarts, flat memory, and
liveness answering the kubelet within the chart's probe timeout all along."""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.gunicorn_server import REPO_ROOT, GunicornServer

pytestmark = pytest.mark.slow

SECONDS = int(os.environ.get("LOAD_SECONDS", "60"))
SHORT_SECONDS = 10  # the variant `make test` runs
CONCURRENCY = 64
WARMUP_SECONDS = 5
PROBE_PERIOD = 0.5  # the kubelet probes every periodSeconds (10); more often here, for figures
# wrk's done() hook writes its totals as one JSON line.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50_ms": %%f, "p99_ms": %%f, "max_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def run_wrk(url: str, script: str, seconds: int) -> dict:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", "10s", "-s", script, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def liveness_timeout() -> float:
    """The chart's default liveness timeoutSeconds (Kubernetes' 1 s when unset)."""
    values = yaml.safe_load((REPO_ROOT / "chart" / "values.yaml").read_text())
    return float(values["probes"]["liveness"].get("timeoutSeconds", 1))


def probe_live(port: int, timeout: float) -> tuple[int | None, float]:
    """One kubelet-style HTTP probe: a fresh connection, no keep-alive, `timeout` for it all."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/v2/health/live", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = None
    finally:
        connection.close()
    return status, time.perf_counter() - started


def probe_until(port: int, timeout: float, stop: threading.Event) -> list[tuple[int | None, float]]:
    probes = []
    while not stop.wait(PROBE_PERIOD):
        probes.append(probe_live(port, timeout))
    return probes


def sample_memory(pids: list[int], stop: threading.Event) -> dict[int, list[float]]:
    """RSS in MiB of each worker, once a second, until `stop`."""
    series: dict[int, list[float]] = {pid: [] for pid in pids}
    processes = [psutil.Process(pid) for pid in pids]
    while not stop.wait(1.0):
        for process in processes:
            series[process.pid].append(process.memory_info().rss / 2**20)
    return series


def run_load(sample: dict, script: Path, seconds: int, timeout: float) -> dict:
    """wrk at CONCURRENCY on /predict for `seconds` (after a warm-up) against 2 workers, with
    liveness probed and worker memory sampled meanwhile."""
    with GunicornServer(sample["env"], workers=2) as server:
        url = server.url + "/predict"
        run_wrk(url, str(script), WARMUP_SECONDS)
        workers = sorted(server.worker_pids())
        stop = threading.Event()
        found: dict = {}
        samplers = [
            threading.Thread(
                target=lambda: found.update(memory=sample_memory(workers, stop)), daemon=True
            ),
            threading.Thread(
                target=lambda: found.update(probes=probe_until(server.port, timeout, stop)),
                daemon=True,
            ),
        ]
        for sampler in samplers:
            sampler.start()
        try:
            totals = run_wrk(url, str(script), seconds)
        finally:
            stop.set()
            for sampler in samplers:
                sampler.join(timeout=timeout + 5)
        return {
            "totals": totals,
            "workers": workers,
            "workers_after": sorted(server.worker_pids()),
            "logs": server.logs(),
            **found,
        }


def load_script(sample: dict, tmp_path: Path) -> Path:
    if not shutil.which("wrk"):
        pytest.fail("wrk is missing: run `make setup` (Debian package wrk)")
    script = tmp_path / "predict.lua"
    script.write_text(WRK_SCRIPT % json.dumps({"instances": sample["x_test"][:1].tolist()}))
    return script


def check_load(run: dict, seconds: int, timeout: float) -> None:
    """No error, no restart, and every liveness probe a 200 within the timeout."""
    totals, probes = run["totals"], run["probes"]
    errors = {k: totals[k] for k in ("connect", "read", "write", "status", "timeout")}
    late = [
        (status, round(elapsed, 3))
        for status, elapsed in probes
        if status != 200 or elapsed > timeout
    ]
    latencies = sorted(elapsed * 1000 for _, elapsed in probes)
    print(
        f"\nLOAD {seconds}s c={CONCURRENCY}: {totals['requests'] / totals['seconds']:.0f} req/s, "
        f"p50 {totals['p50_ms']:.1f} ms, p99 {totals['p99_ms']:.1f} ms, "
        f"max {totals['max_ms']:.1f} ms, {totals['requests']} requests, errors {errors}; "
        f"liveness: {len(probes)} probes (timeout {timeout:g} s), p50 "
        f"{statistics.median(latencies):.1f} ms, p99 "
        f"{latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms, max {latencies[-1]:.1f} ms, "
        f"{len(late)} failed or late"
    )

    assert totals["requests"] > seconds * 100
    assert errors == dict.fromkeys(errors, 0)
    assert run["workers_after"] == run["workers"], "a worker was restarted under load"
    assert "WORKER TIMEOUT" not in run["logs"] and "Traceback" not in run["logs"]
    assert len(probes) >= seconds / PROBE_PERIOD / 2, "liveness was hardly probed"
    assert late == [], f"liveness failed or answered after {timeout:g} s: {late[:10]}"


def test_liveness_answers_within_the_charts_timeout_under_load_at_concurrency_64(sample, tmp_path):
    timeout = liveness_timeout()
    run = run_load(sample, load_script(sample, tmp_path), SHORT_SECONDS, timeout)

    check_load(run, SHORT_SECONDS, timeout)


@pytest.mark.long
def test_sixty_seconds_at_concurrency_64_without_errors_restarts_or_memory_growth(sample, tmp_path):
    timeout = liveness_timeout()
    run = run_load(sample, load_script(sample, tmp_path), SECONDS, timeout)
    memory = run["memory"]
    window = min(10, len(next(iter(memory.values()))) // 3)
    growth = {
        pid: statistics.median(series[-window:]) / statistics.median(series[:window]) - 1
        for pid, series in memory.items()
    }
    print(
        "\nworker RSS first->last 10s: "
        + ", ".join(
            f"{statistics.median(s[:window]):.0f}->{statistics.median(s[-window:]):.0f} MiB"
            for s in memory.values()
        )
    )

    check_load(run, SECONDS, timeout)
    assert all(value <= 0.10 for value in growth.values()), growth

"""Sustained load on gunicorn with the sample model: no errors, no restarts, flat memory."""

import json
import os
import shutil
import statistics
import subprocess
import threading

import psutil
import pytest

from tests.support.gunicorn_server import GunicornServer

pytestmark = [pytest.mark.slow, pytest.mark.long]

SECONDS = int(os.environ.get("LOAD_SECONDS", "60"))
CONCURRENCY = 64
WARMUP_SECONDS = 5
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


def sample_memory(pids: list[int], stop: threading.Event) -> dict[int, list[float]]:
    """RSS in MiB of each worker, once a second, until `stop`."""
    series: dict[int, list[float]] = {pid: [] for pid in pids}
    processes = [psutil.Process(pid) for pid in pids]
    while not stop.wait(1.0):
        for process in processes:
            series[process.pid].append(process.memory_info().rss / 2**20)
    return series


def test_sixty_seconds_at_concurrency_64_without_errors_restarts_or_memory_growth(sample, tmp_path):
    if not shutil.which("wrk"):
        pytest.fail("wrk is missing: run `make setup` (Debian package wrk)")
    body = json.dumps({"instances": sample["x_test"][:1].tolist()})
    script = tmp_path / "predict.lua"
    script.write_text(WRK_SCRIPT % body)

    with GunicornServer(sample["env"], workers=2) as server:
        url = server.url + "/predict"
        run_wrk(url, str(script), WARMUP_SECONDS)
        workers = sorted(server.worker_pids())
        stop = threading.Event()
        memory: dict[int, list[float]] = {}
        sampler = threading.Thread(target=lambda: memory.update(sample_memory(workers, stop)))
        sampler.start()
        totals = run_wrk(url, str(script), SECONDS)
        stop.set()
        sampler.join()
        workers_after = sorted(server.worker_pids())
        logs = server.logs()

    errors = {k: totals[k] for k in ("connect", "read", "write", "status", "timeout")}
    window = min(10, len(next(iter(memory.values()))) // 3)
    growth = {
        pid: statistics.median(series[-window:]) / statistics.median(series[:window]) - 1
        for pid, series in memory.items()
    }
    print(
        f"\nLOAD {SECONDS}s c={CONCURRENCY}: {totals['requests'] / totals['seconds']:.0f} req/s, "
        f"p50 {totals['p50_ms']:.1f} ms, p99 {totals['p99_ms']:.1f} ms, "
        f"max {totals['max_ms']:.1f} ms, {totals['requests']} requests, errors {errors}; "
        "worker RSS first->last 10s: "
        + ", ".join(
            f"{statistics.median(s[:window]):.0f}->{statistics.median(s[-window:]):.0f} MiB"
            for s in memory.values()
        )
    )

    assert totals["requests"] > SECONDS * 100
    assert errors == dict.fromkeys(errors, 0)
    assert workers_after == workers, "a worker was restarted under load"
    assert "WORKER TIMEOUT" not in logs and "Traceback" not in logs
    assert all(value <= 0.10 for value in growth.values()), growth

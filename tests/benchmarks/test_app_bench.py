"""Serving benchmark: our gunicorn against MLServer 1.7 (same model, same request) and the
limit, onnxruntime's in-process predict. hey drives both servers for 20 s at each
concurrency, side by side in one run."""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import onnxruntime
import pytest
import requests
import sklearn

from local.net import free_port
from tests.support.gunicorn_server import GunicornServer
from tests.support.installed_model import install_sample_model

pytestmark = pytest.mark.bench

REPO_ROOT = Path(__file__).resolve().parents[2]
MLSERVER_VENV = REPO_ROOT / ".tools" / "bench-mlserver"
SECONDS = int(os.environ.get("APP_BENCH_SECONDS", 20))
CONCURRENCY = (1, 8, 32)


def mlserver_bin() -> Path:
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        # uvloop 0.22 dropped what MLServer 1.7 calls at start (asyncio.get_event_loop);
        # the same scikit-learn as ours unpickles our fitted model.
        packages = [
            "mlserver==1.7.*",
            "mlserver-sklearn==1.7.*",
            "uvloop<0.22",
            f"scikit-learn=={sklearn.__version__}",
        ]
        pip = str(MLSERVER_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "--quiet", *packages], check=True)
    return binary


def hey(url: str, body: Path, concurrency: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "hey",
            "-z",
            f"{SECONDS}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    errors = re.search(r"Status code distribution:\n((?:\s+\[\d+\].*\n)+)", out)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", errors.group(1))) if errors else {}
    assert set(codes) == {"200"}, out
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": 1000 * float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)),
        "p99_ms": 1000 * float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)),
    }


def start_mlserver(model_dir: Path, port: int) -> subprocess.Popen:
    (model_dir / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "digits",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    process = subprocess.Popen(
        [str(mlserver_bin()), "start", str(model_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/models/digits/ready", timeout=1).ok:
                return process
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.kill()
    raise TimeoutError("MLServer did not become ready")


def test_serving_throughput_and_latency_against_mlserver_and_in_process(tmp_path):
    root = tmp_path / "models"
    sample = install_sample_model(root)
    row = sample["x_test"][:1]
    body = tmp_path / "request.json"
    body.write_text(
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "datatype": "FP32",
                        "shape": [1, 64],
                        "data": row.ravel().tolist(),
                    }
                ]
            }
        )
    )

    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    timings = []
    for _ in range(5000):
        started = time.perf_counter()
        session.run(None, {"pixels": row})
        timings.append(time.perf_counter() - started)
    in_process_ms = 1000 * statistics.median(timings)

    mlserver_dir = Path(tempfile.mkdtemp(prefix="mlserver-"))
    joblib.dump(sample["sklearn_model"], mlserver_dir / "model.joblib")
    mlserver_port = free_port()
    mlserver = start_mlserver(mlserver_dir, mlserver_port)
    env = {"MODEL_ROOT": str(root), "MODEL_NAME": "digits", "MODEL_VERSION": "1"}
    results = {}
    try:
        with GunicornServer(env, workers=int(os.environ.get("WEB_CONCURRENCY", 2))) as ours:
            for concurrency in CONCURRENCY:
                results["ours", concurrency] = hey(
                    ours.url + "/v2/models/digits/infer", body, concurrency
                )
                results["mlserver", concurrency] = hey(
                    f"http://127.0.0.1:{mlserver_port}/v2/models/digits/infer", body, concurrency
                )
    finally:
        os.killpg(mlserver.pid, 15)
        mlserver.wait(30)
        shutil.rmtree(mlserver_dir, ignore_errors=True)

    print(
        f"\nin-process onnxruntime predict (batch 1): median {in_process_ms:.3f} ms "
        f"= {1000 / in_process_ms:.0f} predictions/s per core"
    )
    print(f"{'server':<10}{'c':>4}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs MLServer':>13}")
    for concurrency in CONCURRENCY:
        for server in ("ours", "mlserver"):
            r = results[server, concurrency]
            ratio = r["rps"] / results["mlserver", concurrency]["rps"]
            print(
                f"{server:<10}{concurrency:>4}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}"
                f"{r['p99_ms']:>9.2f}{ratio:>12.2f}x"
            )
    overhead = results["ours", 1]["p50_ms"] - in_process_ms
    print(
        f"ours at c=1: p50 {results['ours', 1]['p50_ms']:.2f} ms, "
        f"{overhead:.2f} ms over in-process predict"
    )

"""The service under a real gunicorn with 2 workers, checked over HTTP."""

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime
import pytest
import requests
import tritonclient.http as triton

from tests.support.gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow


def metric_value(text: str, name: str, labels: str = "") -> float:
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "")
    match = re.search(pattern + r" (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def test_predictions_over_http_match_in_process_onnxruntime(gunicorn, sample):
    rows = sample["x_test"][:16]
    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    expected = session.run(["label"], {"pixels": rows})[0].tolist()

    response = requests.post(
        gunicorn.url + "/predict", json={"instances": rows.tolist()}, timeout=10
    )

    assert response.status_code == 200
    assert response.json()["predictions"] == expected
    assert response.headers["X-Model-Version"] == "1"


def test_request_counts_are_summed_across_both_workers(gunicorn):
    route = 'method="GET",route="/v2/models/<name>",status="200"'
    before_text = requests.get(gunicorn.metrics_url + "/metrics", timeout=10).text
    before = (
        metric_value(before_text, "aiapp_http_requests_total", route) if route in before_text else 0
    )

    def get(_):
        with requests.Session() as session:  # a new connection each, to reach both workers
            return session.get(gunicorn.url + "/v2/models/digits", timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(get, range(200)))
    text = requests.get(gunicorn.metrics_url + "/metrics", timeout=10).text

    assert statuses == [200] * 200
    assert metric_value(text, "aiapp_http_requests_total", route) - before == 200
    assert len(gunicorn.worker_pids()) == 2
    assert metric_value(text, "aiapp_model_ready") == 1
    digest = re.search(
        r'aiapp_model_info\{digest="([a-f0-9]{64})",name="digits",version="1"\} 1.0', text
    )
    assert digest, "model_info with name, version and digest"
    assert metric_value(text, "aiapp_model_fetch_bytes") > 0
    assert metric_value(text, "aiapp_model_fetch_seconds") == 0.25


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) absent")
def test_metrics_pass_promtool_check_metrics(gunicorn, sample):
    requests.post(
        gunicorn.url + "/predict", json={"instances": sample["x_test"][:2].tolist()}, timeout=10
    )
    text = requests.get(gunicorn.metrics_url + "/metrics", timeout=10).text

    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, text=True, capture_output=True
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "aiapp_inference_duration_seconds_bucket" in text


def test_tritonclient_reads_metadata_and_infers_like_onnxruntime(gunicorn, sample):
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    rows = sample["x_test"][:4]
    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    labels, probabilities = session.run(["label", "probabilities"], {"pixels": rows})

    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits")
    metadata = client.get_model_metadata("digits")
    assert metadata["inputs"][0] == {"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")
    ]
    result = client.infer("digits", [tensor], outputs=outputs, model_version="1")

    assert result.as_numpy("label").tolist() == labels.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_a_model_that_cannot_load_leaves_the_server_up_live_but_not_ready(sample):
    """What the chart's startup and liveness probes (/v2/health/live) rely on: no restart."""
    with GunicornServer({**sample["env"], "MODEL_VERSION": "2"}, workers=2) as server:
        workers = sorted(server.worker_pids())
        answers = [
            (
                requests.get(server.url + "/v2/health/live", timeout=5).status_code,
                requests.get(server.url + "/v2/health/ready", timeout=5).status_code,
            )
            for _ in range(20)
        ]
        predict = requests.post(
            server.url + "/predict", json={"instances": [[0.0] * 64]}, timeout=5
        )

        assert answers == [(200, 503)] * 20
        assert predict.status_code == 503 and "digits/2" in predict.json()["error"]
        assert sorted(server.worker_pids()) == workers and server.process.poll() is None
    assert '"message": "model not loaded: ' in server.logs()

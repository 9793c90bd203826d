"""model.prefetch: the loader as a DaemonSet on the node cache (helm 3 and 4), valid
Kubernetes, run exactly like the Deployment's loader, selected by nothing of the app's, and
refused on any volume but hostPath."""

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.chart.conftest import (
    AUTH_MODES,
    EVERY_OPTION,
    HELM_V3,
    HELM_V4,
    by_kind,
    merge,
    one,
    render,
    render_error,
)
from tests.chart.test_aks import render_flags
from tests.reliability.test_chart_security import checkov

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
NODE_CACHE = {"model": {"volume": {"type": "hostPath", "hostPath": "/var/cache/ai-app"}}}
PREFETCH = merge(NODE_CACHE, {"model": {"prefetch": {"enabled": True}}})
DAEMONSET = "DaemonSet demo-ai-app-prefetch"
AUTH = pytest.mark.parametrize("auth", list(AUTH_MODES))


def pods(objects: list[dict]) -> tuple[dict, dict]:
    """The pod templates of the Deployment and of the prefetch DaemonSet."""
    return (
        one(objects, "Deployment")["spec"]["template"],
        one(objects, "DaemonSet")["spec"]["template"],
    )


@HELMS
@pytest.mark.parametrize("k8s_version", ["1.30.0", latest_version()])
def test_the_prefetch_daemonset_validates_against_the_kubernetes_schema(helm, k8s_version):
    objects = render(PREFETCH, helm=helm)

    assert one(objects, "DaemonSet")["metadata"]["name"] == "demo-ai-app-prefetch"
    for obj in objects:
        kubernetes_validate.validate(obj, k8s_version, strict=True)


@HELMS
@AUTH
def test_the_prefetcher_runs_as_the_deployments_loader_does_with_the_same_volume(helm, auth):
    """Same image, env (auth included), security, account and node cache: what it stages is
    what the Deployment's loader finds."""
    app_pod, pod = pods(render(merge(PREFETCH, AUTH_MODES[auth]), helm=helm))
    (loader,) = app_pod["spec"]["initContainers"]
    (prefetch,) = pod["spec"]["containers"]
    own_env = {"NODE_NAME", "PREFETCH_METRICS_PORT"}

    assert prefetch["args"] == ["prefetch"]
    assert (prefetch["image"], prefetch["imagePullPolicy"]) == (
        loader["image"],
        loader["imagePullPolicy"],
    )
    assert [e for e in prefetch["env"] if e["name"] not in own_env] == loader["env"]
    assert prefetch["securityContext"] == loader["securityContext"]
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken"):
        assert pod["spec"][key] == app_pod["spec"][key], key
    assert pod["spec"]["automountServiceAccountToken"] is False
    identity = "azure.workload.identity/use"
    assert pod["metadata"]["labels"].get(identity) == app_pod["metadata"]["labels"].get(identity)
    assert ("AZURE_CLIENT_ID" in {e["name"] for e in loader["env"]}) == (auth == "workloadIdentity")
    model = [v for v in pod["spec"]["volumes"] if v["name"] == "model"]
    assert model == [v for v in app_pod["spec"]["volumes"] if v["name"] == "model"]
    assert model[0]["hostPath"] == {"path": "/var/cache/ai-app", "type": "Directory"}
    assert prefetch["volumeMounts"] == loader["volumeMounts"]  # the model read-write, /tmp
    tmp = [v for v in pod["spec"]["volumes"] if v["name"] == "tmp"]
    assert tmp == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


@HELMS
def test_the_node_name_metrics_port_and_readiness_probe(helm):
    _, pod = pods(render(merge(PREFETCH, {"model": {"prefetch": {"metricsPort": 9300}}}), helm))
    (prefetch,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in prefetch["env"]}

    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["PREFETCH_METRICS_PORT"]["value"] == "9300"
    assert prefetch["ports"] == [{"name": "metrics", "containerPort": 9300, "protocol": "TCP"}]
    assert prefetch["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert "livenessProbe" not in prefetch  # it would kill a long download
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9300"
    assert prefetch["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }


@HELMS
def test_scheduling_and_rollout_come_from_the_prefetch_values(helm):
    toleration = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    values = {"prefetch": {"tolerations": [toleration], "nodeSelector": {"pool": "inference"}}}
    daemonset = one(render(merge(PREFETCH, {"model": values}), helm=helm), "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]

    assert spec["tolerations"] == [toleration]
    assert spec["nodeSelector"] == {"pool": "inference"}
    assert daemonset["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%"},
    }
    defaults = one(render(PREFETCH, helm=helm), "DaemonSet")["spec"]["template"]["spec"]
    assert "tolerations" not in defaults and "nodeSelector" not in defaults


@HELMS
def test_no_selector_of_the_app_picks_a_prefetch_pod(helm):
    """The app's Service would send requests to it, the PDB and spread would count it, the
    app's NetworkPolicy would govern it; the Deployment's own selector can't change."""
    objects = render(merge(EVERY_OPTION, PREFETCH), helm=helm)
    app_pod, pod = pods(objects)
    daemonset = one(objects, "DaemonSet")["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    selectors = [
        one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        *[s["spec"]["selector"] for s in by_kind(objects, "Service")],
        *[t["labelSelector"]["matchLabels"] for t in app_pod["spec"]["topologySpreadConstraints"]],
    ]
    policies = {
        p["metadata"]["name"]: p["spec"]["podSelector"]["matchLabels"]
        for p in by_kind(objects, "NetworkPolicy")
    }

    assert len(selectors) == 4
    assert all(not selector.items() <= labels.items() for selector in selectors), labels
    assert all(selector.items() <= app_pod["metadata"]["labels"].items() for selector in selectors)
    assert not policies["demo-ai-app"].items() <= labels.items()
    assert policies["demo-ai-app-prefetch"] == daemonset
    assert daemonset.items() <= labels.items()
    assert not daemonset.items() <= app_pod["metadata"]["labels"].items()


@HELMS
def test_the_prefetch_network_policy_lets_in_metrics_only_and_out_dns_and_https(helm):
    objects = render(PREFETCH, helm=helm)
    (policy,) = [
        p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("prefetch")
    ]
    spec = policy["spec"]

    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]}
    ]
    assert sorted(p["port"] for rule in spec["egress"] for p in rule["ports"]) == [53, 53, 443]
    without = render(merge(PREFETCH, {"networkPolicy": {"enabled": False}}), helm=helm)
    assert len(by_kind(without, "NetworkPolicy")) == 0


@HELMS
def test_azure_monitor_scrapes_each_nodes_prefetcher(helm):
    on = merge(PREFETCH, {"metrics": {"azureMonitor": {"enabled": True}}})
    objects = render_flags(on, "--api-versions", "azmonitoring.coreos.com/v1/PodMonitor", helm=helm)
    (monitor,) = [
        m for m in by_kind(objects, "PodMonitor") if m["metadata"]["name"].endswith("prefetch")
    ]
    _, pod = pods(objects)

    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]


@HELMS
@pytest.mark.parametrize("volume", ["emptyDir", "persistentVolumeClaim"])
def test_prefetch_on_a_volume_other_than_host_path_is_refused_naming_the_type(helm, volume):
    values = {"model": {"prefetch": {"enabled": True}, "volume": {"type": volume}}}
    if volume == "persistentVolumeClaim":
        values["model"]["volume"]["claimName"] = "models-rwx"
    message = render_error(values, helm=helm)

    assert "/model/volume/type" in message or "model.volume.type" in message, message
    assert "hostPath" in message


@HELMS
@pytest.mark.parametrize("values", [{}, NODE_CACHE], ids=["defaults", "node-cache"])
def test_without_prefetch_nothing_of_it_renders(helm, values):
    objects = render(values, helm=helm)

    assert by_kind(objects, "DaemonSet") == []
    assert all("prefetch" not in obj["metadata"]["name"] for obj in objects)


# What checkov skips on the DaemonSet, each for a reason the chart states next to it.
PREFETCH_SKIPS = {
    "defaults": ({}, {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_8", "CKV_K8S_11"}),
    "every-option": (
        merge(EVERY_OPTION, {"model": {"prefetch": {"resources": {"limits": {"cpu": "1"}}}}}),
        {"CKV_K8S_8"},
    ),
    "existing-secret": (
        AUTH_MODES["existingSecret"],
        {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_8", "CKV_K8S_11", "CKV_K8S_35"},
    ),
}


@pytest.mark.parametrize("case", list(PREFETCH_SKIPS))
def test_checkov_passes_the_prefetcher_and_every_skip_is_explained(case, tmp_path):
    values, expected = PREFETCH_SKIPS[case]
    report = checkov(render(merge(values, PREFETCH)), tmp_path)
    results = report["results"]
    skipped = {
        c["check_id"] for c in results["skipped_checks"] if c["resource"].startswith("DaemonSet.")
    }
    passed = {c["check_id"] for c in results["passed_checks"] if "prefetch" in c["resource"]}

    assert [f"{c['check_id']} {c['resource']}" for c in results["failed_checks"]] == []
    assert all(c["check_result"]["suppress_comment"].strip() for c in results["skipped_checks"])
    assert skipped == expected
    assert {"CKV_K8S_9", "CKV_K8S_22", "CKV_K8S_38", "CKV2_K8S_6"} <= passed  # ready, ro, policy


@HELMS
def test_staged_versions_reach_the_prefetcher_and_leave_the_deployment_as_it_was(helm):
    """Staging the next version rolls only the DaemonSet: the app's pods stay as they are."""
    digest = "a" * 64
    stage = [{"version": "2", "digest": digest}, {"version": "2.1-rc"}]
    staged = render(merge(PREFETCH, {"model": {"prefetch": {"stage": stage}}}), helm)
    plain = render(PREFETCH, helm)

    (prefetch,) = pods(staged)[1]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in prefetch["env"]}

    assert env["PREFETCH_STAGE"] == f"2@{digest} 2.1-rc"
    assert "PREFETCH_STAGE" not in {
        e["name"] for e in pods(plain)[1]["spec"]["containers"][0]["env"]
    }
    assert pods(staged)[0] == pods(plain)[0]


@pytest.mark.parametrize(
    ("stage", "named"),
    [
        ([{"version": "../2"}], "/model/prefetch/stage/0/version"),
        ([{"version": "2", "digest": "abc"}], "/model/prefetch/stage/0/digest"),
        ([{"digest": "a" * 64}], "/model/prefetch/stage/0"),
        ([{"version": 20240101}], "model.prefetch.stage[0].version must be a quoted string"),
    ],
)
def test_a_bad_staged_version_is_refused_naming_it(stage, named):
    assert named in render_error(merge(PREFETCH, {"model": {"prefetch": {"stage": stage}}}))

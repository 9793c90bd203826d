"""The chart rendered by real helm: valid Kubernetes objects and every invariant we promise."""

import subprocess

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.chart.conftest import (
    AUTH_MODES,
    CHART,
    EVERY_OPTION,
    HELM_V3,
    HELM_V4,
    by_kind,
    merge,
    one,
    render,
)


def pod_spec(objects: list[dict]) -> dict:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def test_helm_lint_strict_passes_with_helm_3_and_4():
    for helm in (HELM_V3, HELM_V4):
        result = subprocess.run(
            [
                helm,
                "lint",
                "--strict",
                str(CHART),
                "--values",
                str(CHART / "ci" / "workload-identity-values.yaml"),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("k8s_version", ["1.30.0", latest_version()])
@pytest.mark.parametrize(
    "values",
    [{}, EVERY_OPTION, *AUTH_MODES.values()],
    ids=["defaults", "every-option", *AUTH_MODES],
)
def test_every_object_validates_against_the_kubernetes_schema(values, k8s_version):
    objects = render(values)
    assert {"Deployment", "Service", "ServiceAccount", "Pod"} <= {obj["kind"] for obj in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, k8s_version, strict=True)


def test_optional_objects_are_off_by_default_and_on_when_asked():
    defaults = {obj["kind"] for obj in render()}
    every = render(EVERY_OPTION)

    assert "NetworkPolicy" in defaults  # secure by default; networkPolicy.enabled=false drops it
    assert "NetworkPolicy" not in {
        obj["kind"] for obj in render({"networkPolicy": {"enabled": False}})
    }
    assert "PodDisruptionBudget" in defaults  # 2 replicas by default: see test_aks.py
    assert not defaults & {"HorizontalPodAutoscaler", "ServiceMonitor", "PodMonitor"}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= {
        obj["kind"] for obj in every
    }
    spec = pod_spec(every)
    assert spec["imagePullSecrets"] == [{"name": "acr-pull"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "inference"
    assert spec["affinity"]["podAntiAffinity"]
    assert spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ai-app",
        "app.kubernetes.io/instance": "demo",
    }
    service = one(every, "Service")
    assert service["metadata"]["annotations"] == EVERY_OPTION["service"]["annotations"]
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_service_monitor_needs_the_value_and_the_operators_crd():
    values = yaml.safe_dump({"metrics": {"serviceMonitor": {"enabled": True}}})
    base = [
        HELM_V4,
        "template",
        "demo",
        str(CHART),
        "--values",
        str(CHART / "ci" / "workload-identity-values.yaml"),
        "--values",
        "-",
    ]

    without_crd = subprocess.run(base, input=values, capture_output=True, text=True, check=True)
    with_crd = subprocess.run(
        [*base, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
        input=values,
        capture_output=True,
        text=True,
        check=True,
    )

    assert "kind: ServiceMonitor" not in without_crd.stdout
    monitor = next(
        o for o in yaml.safe_load_all(with_crd.stdout) if o and o["kind"] == "ServiceMonitor"
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]


def test_loader_and_app_share_the_model_volume_read_write_then_read_only():
    spec = pod_spec(render())
    (loader,) = spec["initContainers"]
    (app,) = spec["containers"]
    loader_mount = next(m for m in loader["volumeMounts"] if m["name"] == "model")
    app_mount = next(m for m in app["volumeMounts"] if m["name"] == "model")

    assert loader["args"] == ["fetch"]
    assert loader_mount["mountPath"] == app_mount["mountPath"] == "/models"
    assert not loader_mount.get("readOnly") and app_mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == "model")
    assert volume["emptyDir"]["sizeLimit"] == "2Gi"
    writable = {m["mountPath"] for m in app["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/run/prometheus"}


def env_of(container: dict) -> dict[str, str]:
    """A container's literal env (secret references left out)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_loader_and_app_get_the_same_model_settings_in_the_pod_template():
    objects = render({"model": {"name": "digits", "version": "7", "digest": "a" * 64}})
    spec = pod_spec(objects)
    (loader,) = spec["initContainers"]
    (app,) = spec["containers"]
    model = {
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "7",
        "MODEL_DIGEST": "a" * 64,
        "MODEL_ROOT": "/models",
    }

    assert env_of(loader).items() >= {**model, "MODEL_CONTAINER": "models"}.items()
    assert env_of(app).items() >= {**model, "APP_PORT": "8080"}.items()
    assert "envFrom" not in loader and "envFrom" not in app
    assert not by_kind(objects, "ConfigMap")


def referenced_objects(template: dict) -> set[tuple[str, str]]:
    """(kind, name) of every object a pod template reads: env sources, volumes, account."""
    spec = template["spec"]
    found = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    found |= {("Secret", s["name"]) for s in spec.get("imagePullSecrets", [])}
    for container in spec.get("initContainers", []) + spec["containers"]:
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    found.add((kind, source[key]["name"]))
        for variable in container.get("env", []):
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in variable.get("valueFrom", {}):
                    found.add((kind, variable["valueFrom"][key]["name"]))
    for volume in spec.get("volumes", []):
        for kind, key, name in (
            ("ConfigMap", "configMap", "name"),
            ("Secret", "secret", "secretName"),
        ):
            if key in volume:
                found.add((kind, volume[key][name]))
    return found


@pytest.mark.parametrize(
    "values",
    [{}, AUTH_MODES["existingSecret"], EVERY_OPTION],
    ids=["defaults", "existingSecret", "every-option"],
)
def test_an_upgrade_leaves_every_object_the_old_pods_read_untouched(values):
    """A pod of the old ReplicaSet that restarts, or replaces one during the rollout, must
    still fetch and serve the old version: nothing it reads may change under it."""
    before = render(values)
    after = render(
        merge(values, {"model": {"version": "2", "digest": "b" * 64}, "app": {"workers": 3}})
    )
    rendered_after = {(o["kind"], o["metadata"]["name"]): o for o in after}

    old_template = one(before, "Deployment")["spec"]["template"]
    read = referenced_objects(old_template)
    compared = [obj for obj in before if (obj["kind"], obj["metadata"]["name"]) in read]
    assert compared, "no object the old pods read was rendered: nothing compared"
    for obj in compared:
        key = (obj["kind"], obj["metadata"]["name"])
        assert rendered_after.get(key) == obj, f"the upgrade changes {key}"
    assert env_of(old_template["spec"]["initContainers"][0])["MODEL_VERSION"] == "1"
    assert one(after, "Deployment")["spec"]["template"] != old_template


def test_a_model_bump_changes_the_pod_template_so_pods_roll():
    before = one(render(), "Deployment")["spec"]["template"]
    after = one(render({"model": {"version": "2", "digest": "b" * 64}}), "Deployment")["spec"][
        "template"
    ]

    assert before != after
    annotations = after["metadata"]["annotations"]
    assert annotations["ai-app/model-version"] == "2"
    assert annotations["ai-app/model-digest"] == "b" * 64
    for container in after["spec"]["initContainers"] + after["spec"]["containers"]:
        assert env_of(container)["MODEL_VERSION"] == "2"
        assert env_of(container)["MODEL_DIGEST"] == "b" * 64


@pytest.mark.parametrize("values", [{}, EVERY_OPTION], ids=["defaults", "every-option"])
def test_every_container_is_locked_down(values):
    objects = render(values)
    pods = [pod_spec(objects), *[p["spec"] for p in by_kind(objects, "Pod")]]
    for spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["limits"]["memory"]


def test_probes_use_the_open_inference_protocol_health_routes():
    (app,) = pod_spec(render())["containers"]

    assert app["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert app["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]


def test_every_probe_has_a_timeout_above_the_kubelets_one_second_default():
    (app,) = pod_spec(render())["containers"]

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert app[probe]["timeoutSeconds"] >= 5, probe
    (app,) = pod_spec(render({"probes": {"liveness": {"timeoutSeconds": 9}}}))["containers"]
    assert app["livenessProbe"]["timeoutSeconds"] == 9


def test_an_app_whose_model_cant_load_is_not_restarted_unless_asked():
    """Startup asks only that the server answers: not ready stays up (and visible) by
    default; a release manager may choose restarts by pointing startup at readiness."""
    (default,) = pod_spec(render())["containers"]
    (restart,) = pod_spec(render({"probes": {"startup": {"path": "/v2/health/ready"}}}))[
        "containers"
    ]

    assert default["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert restart["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_pods_outlive_the_drain_plus_the_graceful_timeout():
    objects = render({"app": {"drainSeconds": 15, "gracefulTimeoutSeconds": 40}})
    spec = pod_spec(objects)
    data = env_of(spec["containers"][0])

    assert data["SHUTDOWN_DRAIN_SECONDS"] == "15"
    assert data["GUNICORN_GRACEFUL_TIMEOUT"] == "40"
    assert spec["terminationGracePeriodSeconds"] > 15 + 40
    strategy = one(objects, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_service_is_a_load_balancer_and_pods_are_annotated_for_prometheus():
    objects = render()
    service = one(objects, "Service")
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]

    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert (
        annotations["prometheus.io/scrape"],
        annotations["prometheus.io/port"],
        annotations["prometheus.io/path"],
    ) == ("true", "9090", "/metrics")


def test_workload_identity_wires_the_service_account_and_the_pod_label():
    objects = render()
    account = one(objects, "ServiceAccount")
    template = one(objects, "Deployment")["spec"]["template"]

    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == (
        "11111111-2222-3333-4444-555555555555"
    )
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == account["metadata"]["name"]
    (loader,) = template["spec"]["initContainers"]
    assert env_of(loader)["AZURE_STORAGE_AUTH"] == "identity"
    assert all("valueFrom" not in e for e in loader["env"])  # no secret anywhere


def test_existing_secret_reaches_only_the_loader():
    objects = render(AUTH_MODES["existingSecret"])
    spec = pod_spec(objects)
    (loader,) = spec["initContainers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in loader["env"] if "valueFrom" in e}

    assert refs["AZURE_STORAGE_CONNECTION_STRING"] == {
        "name": "blob",
        "key": "AZURE_STORAGE_CONNECTION_STRING",
        "optional": True,
    }
    assert refs["AZURE_STORAGE_SAS_TOKEN"]["key"] == "AZURE_STORAGE_SAS_TOKEN"
    assert all("valueFrom" not in e for e in spec["containers"][0]["env"])
    assert not any(e["name"].startswith("AZURE_") for e in spec["containers"][0]["env"])
    assert (
        "azure.workload.identity/use"
        not in one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    )
    assert env_of(loader)["AZURE_STORAGE_AUTH"] == "auto"


def test_public_blobs_use_anonymous_access():
    (loader,) = pod_spec(render(AUTH_MODES["none"]))["initContainers"]
    assert env_of(loader)["AZURE_STORAGE_AUTH"] == "anonymous"


def test_helm_test_pod_checks_readiness_and_infers_through_the_service():
    (pod,) = by_kind(render(), "Pod")

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "http://demo-ai-app:80" in script and "/predict" in script
    assert "/v2/health/ready" in script


@pytest.mark.parametrize(
    "values",
    [{}, EVERY_OPTION, *AUTH_MODES.values()],
    ids=["defaults", "every-option", *AUTH_MODES],
)
def test_helm_3_and_helm_4_render_the_same_objects(values):
    assert render(values, helm=HELM_V3) == render(values, helm=HELM_V4)


def test_no_selector_of_the_chart_picks_the_helm_test_pod():
    objects = render()
    test_pod = one(objects, "Pod")
    selectors = [
        one(objects, "Service")["spec"]["selector"],
        one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]

    for selector in selectors:
        assert not selector.items() <= test_pod["metadata"]["labels"].items()


def test_every_namespaced_object_names_the_release_namespace():
    for obj in render(EVERY_OPTION):
        assert obj["metadata"]["namespace"] == "serving", obj["kind"]


def test_the_helm_test_pod_is_pulled_and_scheduled_like_the_app():
    objects = render(EVERY_OPTION)
    app, test = pod_spec(objects), one(objects, "Pod")["spec"]

    for key in ("imagePullSecrets", "nodeSelector", "tolerations"):
        assert test[key] == app[key] == EVERY_OPTION[key], key


def admitted(policy: dict, labels: dict) -> bool:
    """Whether a pod with these labels, in the policy's namespace, may reach the app port."""
    for rule in policy["spec"]["ingress"]:
        peers = rule.get("from")
        if peers is None or any(
            peer.keys() == {"podSelector"}
            and peer["podSelector"]["matchLabels"].items() <= labels.items()
            for peer in peers
        ):
            return True
    return False


def test_the_network_policy_admits_the_helm_test_pod_and_only_it_besides_ingress_from():
    restricted = {"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}}
    objects = render(restricted)
    test_labels = one(objects, "Pod")["metadata"]["labels"]
    policy = one(objects, "NetworkPolicy")

    assert admitted(policy, test_labels)
    assert not admitted(policy, {**test_labels, "app.kubernetes.io/component": "other"})
    without_tests = one(render(merge(restricted, {"tests": {"enabled": False}})), "NetworkPolicy")
    assert not admitted(without_tests, test_labels)


@pytest.mark.parametrize("values", [{}, EVERY_OPTION], ids=["defaults", "every-option"])
def test_the_network_policy_opens_the_app_and_metrics_ports_in_and_dns_and_https_out_only(values):
    policy = one(render(values), "NetworkPolicy")["spec"]

    assert policy["policyTypes"] == ["Ingress", "Egress"]
    # A rule without "ports" (or an empty one) admits every port.
    assert [(rule or {}).get("ports") for rule in policy["ingress"]] == [
        [{"port": "http", "protocol": "TCP"}],
        [{"port": "metrics", "protocol": "TCP"}],
    ]
    allowed_out = {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    for rule in policy["egress"]:
        assert (rule or {}).get("ports"), "an egress rule without ports opens every port"
        assert {(p["port"], p["protocol"]) for p in rule["ports"]} <= allowed_out
        assert "to" not in rule  # any destination, on those ports only

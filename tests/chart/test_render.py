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
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Pod"} <= {
        obj["kind"] for obj in objects
    }
    for obj in objects:
        kubernetes_validate.validate(obj, k8s_version, strict=True)


def test_optional_objects_are_off_by_default_and_on_when_asked():
    defaults = {obj["kind"] for obj in render()}
    every = render(EVERY_OPTION)

    assert "NetworkPolicy" in defaults  # secure by default; networkPolicy.enabled=false drops it
    assert "NetworkPolicy" not in {
        obj["kind"] for obj in render({"networkPolicy": {"enabled": False}})
    }
    assert not defaults & {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= {
        obj["kind"] for obj in every
    }
    assert "replicas" not in one(every, "Deployment")["spec"]  # the HPA owns it
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
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


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


def test_loader_and_app_get_the_same_model_settings_from_one_configmap():
    objects = render({"model": {"name": "digits", "version": "7", "digest": "a" * 64}})
    spec = pod_spec(objects)
    configmap = one(objects, "ConfigMap")

    for container in spec["initContainers"] + spec["containers"]:
        assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert {
        k: configmap["data"][k]
        for k in ("MODEL_NAME", "MODEL_VERSION", "MODEL_DIGEST", "MODEL_ROOT", "MODEL_CONTAINER")
    } == {
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "7",
        "MODEL_DIGEST": "a" * 64,
        "MODEL_ROOT": "/models",
        "MODEL_CONTAINER": "models",
    }
    assert configmap["data"]["APP_PORT"] == "8080"


def test_a_model_bump_changes_the_pod_template_so_pods_roll():
    before = one(render(), "Deployment")["spec"]["template"]
    after = one(render({"model": {"version": "2", "digest": "b" * 64}}), "Deployment")["spec"][
        "template"
    ]

    assert before != after
    annotations = after["metadata"]["annotations"]
    assert annotations["ai-app/model-version"] == "2"
    assert annotations["ai-app/model-digest"] == "b" * 64
    assert annotations["checksum/config"] != before["metadata"]["annotations"]["checksum/config"]
    assert (
        one(render({"app": {"workers": 3}}), "Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]
        != annotations["checksum/config"]
    )


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

    assert app["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert app["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_pods_outlive_the_drain_plus_the_graceful_timeout():
    objects = render({"app": {"drainSeconds": 15, "gracefulTimeoutSeconds": 40}})
    spec = pod_spec(objects)
    data = one(objects, "ConfigMap")["data"]

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
    ) == ("true", "8080", "/metrics")


def test_workload_identity_wires_the_service_account_and_the_pod_label():
    objects = render()
    account = one(objects, "ServiceAccount")
    template = one(objects, "Deployment")["spec"]["template"]

    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == (
        "11111111-2222-3333-4444-555555555555"
    )
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert one(objects, "ConfigMap")["data"]["AZURE_STORAGE_AUTH"] == "identity"
    assert "env" not in template["spec"]["initContainers"][0]  # no secret anywhere


def test_existing_secret_reaches_only_the_loader():
    objects = render(AUTH_MODES["existingSecret"])
    spec = pod_spec(objects)
    (loader,) = spec["initContainers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in loader["env"]}

    assert refs["AZURE_STORAGE_CONNECTION_STRING"] == {
        "name": "blob",
        "key": "AZURE_STORAGE_CONNECTION_STRING",
        "optional": True,
    }
    assert refs["AZURE_STORAGE_SAS_TOKEN"]["key"] == "AZURE_STORAGE_SAS_TOKEN"
    assert "env" not in spec["containers"][0]
    assert (
        "azure.workload.identity/use"
        not in one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    )
    assert one(objects, "ConfigMap")["data"]["AZURE_STORAGE_AUTH"] == "auto"


def test_public_blobs_use_anonymous_access():
    assert one(render(AUTH_MODES["none"]), "ConfigMap")["data"]["AZURE_STORAGE_AUTH"] == (
        "anonymous"
    )


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

"""model.volume: each type rendered (helm 3 and 4), valid Kubernetes, the app read-only on
it, and every bad combination refused naming the value."""

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.chart.conftest import HELM_V3, HELM_V4, one, render, render_error

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
# Each type with its settings, and the pod volume it must render.
VOLUMES = {
    "emptyDir": ({}, {"emptyDir": {"sizeLimit": "2Gi"}}),
    "ephemeral": (
        {"type": "ephemeral", "size": "10Gi", "storageClassName": "managed-csi"},
        {
            "ephemeral": {
                "volumeClaimTemplate": {
                    "metadata": {
                        "labels": {
                            "app.kubernetes.io/name": "ai-app",
                            "app.kubernetes.io/instance": "demo",
                        }
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "managed-csi",
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            }
        },
    ),
    "persistentVolumeClaim": (
        {"type": "persistentVolumeClaim", "claimName": "models-rwx"},
        {"persistentVolumeClaim": {"claimName": "models-rwx"}},
    ),
    "hostPath": (
        {"type": "hostPath", "hostPath": "/var/cache/ai-app"},
        {"hostPath": {"path": "/var/cache/ai-app", "type": "Directory"}},
    ),
}
TYPES = pytest.mark.parametrize("kind", list(VOLUMES))


def pod_spec(volume: dict, helm: str, **values) -> dict:
    objects = render({"model": {"volume": volume}, **values}, helm=helm)
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def model_mount(container: dict) -> dict:
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "model"]
    return mount


@HELMS
@TYPES
def test_each_type_renders_its_volume_written_by_the_loader_and_read_only_to_the_app(helm, kind):
    values, expected = VOLUMES[kind]
    spec = pod_spec(values, helm)
    (loader,) = spec["initContainers"]
    (app,) = spec["containers"]

    assert [v for v in spec["volumes"] if v["name"] == "model"] == [{"name": "model", **expected}]
    assert model_mount(loader) == {"name": "model", "mountPath": "/models"}
    assert model_mount(app) == {"name": "model", "mountPath": "/models", "readOnly": True}


@HELMS
@TYPES
@pytest.mark.parametrize("k8s_version", ["1.30.0", latest_version()])
def test_each_type_validates_against_the_kubernetes_schema(helm, kind, k8s_version):
    objects = render({"model": {"volume": VOLUMES[kind][0]}}, helm=helm)
    for obj in objects:
        kubernetes_validate.validate(obj, k8s_version, strict=True)


@HELMS
def test_an_ephemeral_volume_without_a_class_uses_the_clusters_default(helm):
    spec = pod_spec({"type": "ephemeral", "size": 10737418240}, helm)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "model"]
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]

    assert "storageClassName" not in claim
    assert str(claim["resources"]["requests"]["storage"]) == "10737418240"  # not 1.07e+10


@HELMS
@TYPES
def test_only_an_empty_dir_is_requested_as_ephemeral_storage(helm, kind):
    """The emptyDir lives on the node's ephemeral storage; the other types don't, and a
    request for them would only keep pods off nodes where they fit."""
    spec = pod_spec(VOLUMES[kind][0], helm)
    requests = [c["resources"]["requests"] for c in spec["initContainers"] + spec["containers"]]

    expected = ["2Gi", "2Gi"] if kind == "emptyDir" else [None, None]
    assert [r.get("ephemeral-storage") for r in requests] == expected
    own = {"app": {"resources": {"requests": {"ephemeral-storage": "1Gi", "cpu": "1"}}}}
    (app,) = pod_spec(VOLUMES[kind][0], helm, **own)["containers"]
    assert app["resources"]["requests"]["ephemeral-storage"] == "1Gi"


# A bad combination, and the value helm must name (helm 4 as a path, helm 3 dotted).
BAD_VOLUMES = [
    ({"type": "nfs"}, "/model/volume/type"),
    ({"type": "persistentVolumeClaim"}, "/model/volume/claimName"),
    ({"type": "persistentVolumeClaim", "claimName": "Models_RWX"}, "/model/volume/claimName"),
    ({"type": "ephemeral"}, "/model/volume/size"),
    ({"type": "ephemeral", "size": "ten"}, "/model/volume/size"),
    ({"type": "hostPath"}, "/model/volume/hostPath"),
    ({"type": "hostPath", "hostPath": "var/cache/ai-app"}, "/model/volume/hostPath"),
    ({"type": "hostPath", "hostPath": "/var/cache/../../etc"}, "/model/volume/hostPath"),
    ({"type": "hostPath", "hostPath": "/"}, "/model/volume/hostPath"),
    ({"size": "5Gi"}, "/model/volume/size"),
    ({"storageClassName": "managed-csi"}, "/model/volume/storageClassName"),
    ({"claimName": "models-rwx"}, "/model/volume/claimName"),
    ({"hostPath": "/var/cache/ai-app"}, "/model/volume/hostPath"),
    ({"type": "ephemeral", "size": "5Gi", "claimName": "x"}, "/model/volume/claimName"),
    ({"type": "persistentVolumeClaim", "claimName": "x", "size": "5Gi"}, "/model/volume/size"),
    ({"type": "hostPath", "hostPath": "/var/a", "storageClassName": "x"}, "storageClassName"),
    ({"sizeLimit": "lots"}, "/model/volume/sizeLimit"),
    ({"medium": "Memory"}, "medium"),
]


@HELMS
@pytest.mark.parametrize(("volume", "named"), BAD_VOLUMES, ids=[str(v) for v, _ in BAD_VOLUMES])
def test_a_bad_combination_is_refused_naming_the_value(helm, volume, named):
    message = render_error({"model": {"volume": volume}}, helm=helm)

    assert named in message or named.strip("/").replace("/", ".") in message, message


@HELMS
def test_the_replaced_size_key_is_refused_naming_the_new_one(helm):
    """Read silently, the old key would leave a 2Gi volume under a model sized for more."""
    message = render_error({"model": {"volumeSizeLimit": "5Gi"}}, helm=helm)

    assert "model.volumeSizeLimit was replaced by model.volume.sizeLimit" in message
    assert "5Gi" in message


def loader_env(spec: dict) -> dict[str, str]:
    (loader,) = spec["initContainers"]
    return {e["name"]: e.get("value") for e in loader["env"]}


@HELMS
def test_the_cache_settings_reach_the_loader_exactly(helm):
    cache = {"keep": 5, "maxBytes": 200 * 1024**3, "verify": "full"}
    spec = pod_spec({}, helm, model={"cache": cache, "volume": {"type": "emptyDir"}})

    env = loader_env(spec)

    assert (env["MODEL_CACHE_KEEP"], env["MODEL_CACHE_MAX_BYTES"], env["MODEL_CACHE_VERIFY"]) == (
        "5",
        "214748364800",
        "full",
    )
    assert not [e for e in spec["containers"][0]["env"] if e["name"].startswith("MODEL_CACHE")]


@pytest.mark.parametrize(
    ("cache", "named"),
    [
        ({"keep": 0}, "/model/cache/keep"),
        ({"maxBytes": -1}, "/model/cache/maxBytes"),
        ({"verify": "sha1"}, "/model/cache/verify"),
        ({"keepVersions": 2}, "keepVersions"),
    ],
)
def test_a_bad_cache_setting_is_refused_naming_it(cache, named):
    assert named in render_error({"model": {"cache": cache}})

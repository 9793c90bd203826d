"""Every value that becomes a string in the pod renders exactly as written, with helm 3 and 4.

Helm reads numbers in a values file as float64 (20240101 renders as 2.0240101e+07, 1.0 as
1) and `--set` numbers as int64: strings in the pod must never depend on which one it was.
"""

import json
import subprocess

import pytest
import yaml

from tests.chart.conftest import BASE_VALUES, CHART, HELM_V3, HELM_V4, merge, one, render_error

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])


def render_with(helm: str, values: dict, *flags: str) -> list[dict]:
    result = subprocess.run(
        [helm, "template", "demo", str(CHART), "--values", "-", *flags],
        # JSON is YAML with every string quoted: PyYAML would leave 1e3 bare, a float to helm.
        input=json.dumps(merge(BASE_VALUES, values)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def pod_strings(objects: list[dict]) -> dict[str, str]:
    """What the pod sees: the loader's and the app's env, images, annotations, the test."""
    template = one(objects, "Deployment")["spec"]["template"]
    (loader,) = template["spec"]["initContainers"]
    (app,) = template["spec"]["containers"]
    seen = {f"loader {e['name']}": e["value"] for e in loader["env"] if "value" in e}
    seen |= {f"app {e['name']}": e["value"] for e in app["env"] if "value" in e}
    seen |= {"loader image": loader["image"], "app image": app["image"]}
    seen |= template["metadata"]["annotations"]
    seen["test script"] = one(objects, "Pod")["spec"]["containers"][0]["command"][-1]
    seen["sizeLimit"] = str(template["spec"]["volumes"][0]["emptyDir"]["sizeLimit"])
    return seen


# What a person types in a values file for a string setting, and the key helm must refuse.
NUMBERS_IN_A_VALUES_FILE = [
    ({"model": {"version": 20240101}}, "model.version"),
    ({"model": {"version": 1.0}}, "model.version"),
    ({"model": {"version": 1.10}}, "model.version"),
    ({"model": {"version": 3}}, "model.version"),
    ({"model": {"name": 123}}, "model.name"),
    ({"storage": {"container": 2024}}, "storage.container"),
    ({"image": {"app": {"tag": 20241}}}, "image.app.tag"),
    ({"image": {"loader": {"tag": 7}}}, "image.loader.tag"),
]


@HELMS
@pytest.mark.parametrize(
    ("values", "key"), NUMBERS_IN_A_VALUES_FILE, ids=[str(v) for v, _ in NUMBERS_IN_A_VALUES_FILE]
)
def test_a_number_in_a_values_file_for_a_string_is_refused_naming_the_fix(helm, values, key):
    message = render_error(values, helm=helm)

    assert f"{key} must be a quoted string" in message
    assert "--set-string" in message


@HELMS
def test_set_flags_render_exactly_as_typed(helm):
    seen = pod_strings(
        render_with(
            helm,
            {},
            "--set",
            "model.version=20240101,model.name=123,storage.container=2024",
            "--set",
            "image.app.tag=20241,image.loader.tag=0020241,model.volume.sizeLimit=2147483648",
        )
    )

    for container in ("loader", "app"):
        assert seen[f"{container} MODEL_VERSION"] == "20240101"
        assert seen[f"{container} MODEL_NAME"] == "123"
    assert seen["loader MODEL_CONTAINER"] == "2024"
    assert seen["ai-app/model-version"] == "20240101"
    assert seen["app image"].endswith(":20241")
    assert seen["loader image"].endswith(":0020241")
    assert seen["sizeLimit"] == "2147483648"
    assert '== "20240101"' in seen["test script"] and "/v2/models/123" in seen["test script"]


@HELMS
@pytest.mark.parametrize("version", ["1.10", "1.0", "010", "20240101", "1e3"])
def test_quoted_versions_render_exactly_as_written(helm, version):
    from_file = pod_strings(render_with(helm, {"model": {"version": version}}))
    from_flag = pod_strings(render_with(helm, {}, "--set-string", f"model.version={version}"))

    for seen in (from_file, from_flag):
        assert seen["loader MODEL_VERSION"] == seen["app MODEL_VERSION"] == version
        assert seen["ai-app/model-version"] == version


@HELMS
def test_integer_settings_from_a_values_file_render_as_integers(helm):
    seen = pod_strings(
        render_with(
            helm,
            {
                "app": {
                    "port": 8080,
                    "maxRequestBytes": 20971520,
                    "maxBatchSize": 1000000,
                    "gracefulTimeoutSeconds": 1200000,
                    "drainSeconds": 10,
                },
                "model": {"volume": {"sizeLimit": 2147483648}},
                "metrics": {"port": 9090},
            },
        )
    )

    assert seen["app APP_PORT"] == "8080"
    assert seen["app MAX_REQUEST_BYTES"] == "20971520"
    assert seen["app MAX_BATCH_SIZE"] == "1000000"
    assert seen["app GUNICORN_GRACEFUL_TIMEOUT"] == "1200000"
    assert seen["app METRICS_PORT"] == seen["prometheus.io/port"] == "9090"
    assert seen["sizeLimit"] == "2147483648"

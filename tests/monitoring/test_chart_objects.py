"""The chart's monitoring objects: the PrometheusRule only with the value and the operator's
CRD, the dashboard ConfigMap only with its value; strict values; checkov and the Kubernetes
schema (where one exists) on both."""

import pytest
from kubernetes_validate import SchemaNotFoundError, validate

from tests.chart.conftest import EVERY_OPTION, HELM_V3, HELM_V4, by_kind, merge, render_error
from tests.chart.test_aks import render_flags
from tests.reliability.test_chart_security import checkov

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
CRD = ("--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
SET = ("serverErrors.ratio=0.005", "latency.p99Seconds=2.5")
ENABLED = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}


@HELMS
def test_the_prometheus_rule_needs_the_value_and_the_operators_crd(helm):
    assert not by_kind(render_flags({}, *CRD, helm=helm), "PrometheusRule")
    assert not by_kind(render_flags(ENABLED, helm=helm), "PrometheusRule")
    labelled = merge(ENABLED, {"metrics": {"prometheusRule": {"labels": {"release": "kps"}}}})
    (rule,) = by_kind(render_flags(labelled, *CRD, helm=helm), "PrometheusRule")

    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == "demo-ai-app"
    assert rule["metadata"]["namespace"] == "serving"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert {r.get("alert") for r in rule["spec"]["groups"][0]["rules"]} >= {
        "AiAppModelNotReady",
        "AiAppHighServerErrorRatio",
        "AiAppHighClientErrorRatio",
        "AiAppHighLatencyP99",
        "AiAppModelVersionSkew",
        "AiAppTargetsDown",
    }


def test_the_configmap_validates_and_the_rule_has_no_builtin_schema():
    objects = render_flags(ENABLED, *CRD)
    (config_map,) = by_kind(objects, "ConfigMap")
    (rule,) = by_kind(objects, "PrometheusRule")

    validate(config_map, "1.30.0", strict=True)
    with pytest.raises(SchemaNotFoundError):  # a CRD: promtool checks its groups instead
        validate(rule, "1.30.0", strict=True)


BAD_VALUES = [
    ({"serverErrors": {"ratio": 1.5}}, "serverErrors/ratio"),
    ({"clientErrors": {"ratio": 0}}, "clientErrors/ratio"),
    ({"clientErrors": {"ratio": "0.0"}}, "clientErrors/ratio"),
    ({"latency": {"p99Seconds": "100"}}, "latency/p99Seconds"),
    ({"latency": {"p99Seconds": -1}}, "latency/p99Seconds"),
    ({"latency": {"p99Seconds": "1s"}}, "latency/p99Seconds"),
    ({"modelNotReady": {"for": "5 minutes"}}, "modelNotReady/for"),
    ({"selector": "job=ai-app"}, "prometheusRule/selector"),
    ({"selector": 'job="a"} or vector(1) #'}, "prometheusRule/selector"),
    ({"targetsDown": {"after": "2m"}}, "after"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_bad_alert_values_fail_rendering_naming_the_value(values, named):
    assert named in render_error({"metrics": {"prometheusRule": values}})


@HELMS
def test_thresholds_given_with_set_render_as_typed(helm):
    """helm --set passes 0.005 as a string: the schema takes it in the same bounds."""
    flags = [f"--set=metrics.prometheusRule.{key}" for key in ("enabled=true", *SET)]
    (rule,) = by_kind(render_flags({}, *CRD, *flags, helm=helm), "PrometheusRule")
    exprs = {r.get("alert"): r["expr"] for r in rule["spec"]["groups"][0]["rules"]}

    assert exprs["AiAppHighServerErrorRatio"].endswith("> 0.005")
    assert exprs["AiAppHighLatencyP99"].endswith("> 2.5")


def test_a_selector_with_several_matchers_renders():
    selector = 'job="ai-app", namespace=~"serving|staging"'
    (rule,) = by_kind(
        render_flags(merge(ENABLED, {"metrics": {"prometheusRule": {"selector": selector}}}), *CRD),
        "PrometheusRule",
    )
    exprs = [r["expr"] for r in rule["spec"]["groups"][0]["rules"]]
    assert all(selector in expr for expr in exprs)


@pytest.mark.slow
def test_checkov_finds_no_failed_check_on_the_chart_with_its_monitoring_objects(tmp_path):
    objects = render_flags(merge(EVERY_OPTION, ENABLED), *CRD)
    assert {"ConfigMap", "PrometheusRule"} <= {obj["kind"] for obj in objects}

    report = checkov(objects, tmp_path)

    assert report["summary"]["parsing_errors"] == 0
    assert report["results"]["failed_checks"] == []

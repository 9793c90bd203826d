"""The alerting rules under Debian's promtool: the plain rules file and the chart's
PrometheusRule are one (monitoring/render.py), they check, and each alert fires on synthetic
series past its threshold and stays quiet just under it or for less than its `for`."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from monitoring import render
from tests.chart.conftest import BASE_VALUES, CHART, HELM_V3, HELM_V4, merge

RULES = render.RULES
JOB = 'job="ai-app"'
CRD = ("--api-versions", "monitoring.coreos.com/v1/PrometheusRule")


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if not binary:
        pytest.fail("promtool is missing: run `make setup` (Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def requests_series(status: str, per_minute: int, route: str = "/predict") -> tuple[str, str]:
    labels = f'{JOB},route="{route}",method="POST",status="{status}"'
    return f"aiapp_http_requests_total{{{labels}}}", f"0+{per_minute}x40"


def latency_series(counts: dict[str, int], route: str = "/predict") -> list[tuple[str, str]]:
    """Cumulative bucket counts per minute for le -> count."""
    return [
        (
            f'aiapp_http_request_duration_seconds_bucket{{{JOB},route="{route}",method="POST",'
            f'le="{le}"}}',
            f"0+{count}x40",
        )
        for le, count in counts.items()
    ]


def model_info(instance: str, version: str, digest: str, values: str) -> tuple[str, str]:
    labels = f'{JOB},instance="{instance}",name="digits",version="{version}",digest="{digest}"'
    return f"aiapp_model_info{{{labels}}}", values


@dataclass
class Case:
    """Series, then at each eval time the alerts expected firing: (extra labels, summary)."""

    alert: str
    series: list[tuple[str, str]]
    checks: list[tuple[str, list[tuple[dict, str]]]] = field(default_factory=list)


def firing(labels: dict, summary: str) -> list[tuple[dict, str]]:
    return [({"job": "ai-app", **labels}, summary)]


NOT_READY = 'aiapp_model_ready{job="ai-app",instance="10.0.0.1:9090",pod="ai-app-7d9-x"}'
READY = 'aiapp_model_ready{job="ai-app",instance="10.0.0.2:9090",pod="ai-app-7d9-y"}'
NOT_READY_LABELS = {"instance": "10.0.0.1:9090", "pod": "ai-app-7d9-x"}
NOT_READY_SUMMARY = "Model not ready on 10.0.0.1:9090 (pod ai-app-7d9-x)"
SLOW = {"0.5": 98, "1": 98, "2.5": 100, "+Inf": 100}  # p99 1.75 s
FAST = {"0.5": 98, "1": 100, "2.5": 100, "+Inf": 100}  # p99 0.75 s

CASES = {
    "model_not_ready_for_5m_fires_for_that_pod_only": Case(
        "AiAppModelNotReady",
        [(NOT_READY, "0x10"), (READY, "1x10")],
        [("4m", []), ("5m", firing(NOT_READY_LABELS, NOT_READY_SUMMARY))],
    ),
    "model_not_ready_for_4m_stays_quiet": Case(
        "AiAppModelNotReady",
        [(NOT_READY, "1 0 0 0 0 1 1 1 1 1 1"), (READY, "1x10")],
        [("4m", []), ("5m", []), ("10m", [])],
    ),
    "5xx_ratio_of_2.1_percent_fires": Case(
        "AiAppHighServerErrorRatio",
        [requests_series("200", 979), requests_series("500", 21)],
        [("5m", []), ("10m", firing({}, "2.1% of answers are 5xx (ai-app)"))],
    ),
    "5xx_ratio_of_1.9_percent_with_failing_health_probes_stays_quiet": Case(
        "AiAppHighServerErrorRatio",
        [
            requests_series("200", 981),
            requests_series("500", 19),
            requests_series("503", 1000, route="/v2/health/ready"),
        ],
        [("10m", []), ("30m", [])],
    ),
    "4xx_ratio_of_10.5_percent_fires_after_15m": Case(
        "AiAppHighClientErrorRatio",
        [requests_series("200", 895), requests_series("400", 105)],
        [("15m", []), ("20m", firing({}, "10.5% of answers are 4xx (ai-app)"))],
    ),
    "4xx_ratio_of_9.9_percent_with_scanners_on_unknown_paths_stays_quiet": Case(
        "AiAppHighClientErrorRatio",
        [
            requests_series("200", 901),
            requests_series("400", 99),
            requests_series("404", 5000, route="unmatched"),
        ],
        [("20m", []), ("40m", [])],
    ),
    "p99_latency_of_1.75s_fires_after_10m": Case(
        "AiAppHighLatencyP99",
        latency_series(SLOW),
        [("10m", []), ("15m", firing({}, "p99 request latency is 1.75s (ai-app)"))],
    ),
    "p99_latency_of_0.75s_with_slow_health_probes_stays_quiet": Case(
        "AiAppHighLatencyP99",
        latency_series(FAST) + latency_series(SLOW, route="/v2/health/live"),
        [("15m", []), ("40m", [])],
    ),
    "two_digests_served_for_15m_fire": Case(
        "AiAppModelVersionSkew",
        [model_info("a", "1", "d1", "1x40"), model_info("b", "1", "d2", "1x40")],
        [("14m", []), ("20m", firing({}, "2 model versions served at once (ai-app)"))],
    ),
    "a_10m_rollout_to_version_2_stays_quiet": Case(
        "AiAppModelVersionSkew",
        [model_info("a", "1", "d1", "1x10 stale"), model_info("b", "2", "d2", "1x40")],
        [("10m", []), ("20m", []), ("40m", [])],
    ),
    "every_target_down_for_2m_fires": Case(
        "AiAppTargetsDown",
        [('up{job="ai-app",instance="a"}', "1 1 0x10"), ('up{job="ai-app",instance="b"}', "0x12")],
        [("3m", []), ("5m", firing({}, 'No target of job="ai-app" is up'))],
    ),
    "no_target_at_all_fires": Case(
        "AiAppTargetsDown",
        [('up{job="other",instance="a"}', "1x10")],
        [("1m", []), ("3m", firing({}, 'No target of job="ai-app" is up'))],
    ),
    "one_target_up_stays_quiet": Case(
        "AiAppTargetsDown",
        [('up{job="ai-app",instance="a"}', "0x10"), ('up{job="ai-app",instance="b"}', "1x10")],
        [("5m", []), ("10m", [])],
    ),
}


def severities_and_descriptions(rules: Path) -> dict[str, tuple[str, str]]:
    groups = yaml.safe_load(rules.read_text())["groups"]
    return {
        rule["alert"]: (rule["labels"]["severity"], rule["annotations"]["description"])
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }


def run_case(case: Case, rules: Path, workdir: Path) -> subprocess.CompletedProcess:
    """promtool test rules on one case; descriptions are plain text, read from the rules."""
    severity, description = severities_and_descriptions(rules)[case.alert]
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": case.alert,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "severity": severity},
                                "exp_annotations": {
                                    "summary": summary,
                                    "description": description,
                                },
                            }
                            for labels, summary in expected
                        ],
                    }
                    for at, expected in case.checks
                ],
            }
        ],
    }
    path = workdir / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    return promtool("test", "rules", str(path))


def rendered_rules(values: dict, workdir: Path, helm: str = HELM_V4) -> Path:
    """The chart's PrometheusRule groups, rendered with these metrics.prometheusRule values."""
    rule = merge({"enabled": True, "selector": JOB}, values)
    path = workdir / "rendered.yaml"
    path.write_text(render.render_groups({"metrics": {"prometheusRule": rule}}, helm=helm))
    return path


def test_the_rules_file_is_what_the_chart_renders():
    values = {"metrics": {"prometheusRule": {"enabled": True, "selector": JOB}}}
    assert RULES.read_text() == render.HEADER + render.render_groups(values)
    check = subprocess.run(
        [sys.executable, str(render.REPO_ROOT / "monitoring" / "render.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_promtool_checks_the_rules_file():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


@pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])
def test_promtool_checks_the_prometheus_rule_the_chart_renders(helm, tmp_path):
    result = subprocess.run(
        [helm, "template", "demo", str(CHART), "--namespace", "serving", "--values", "-", *CRD],
        input=json.dumps(merge(BASE_VALUES, {"metrics": {"prometheusRule": {"enabled": True}}})),
        capture_output=True,
        text=True,
        check=True,
    )
    (rule,) = [o for o in yaml.safe_load_all(result.stdout) if o and o["kind"] == "PrometheusRule"]
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))

    checked = promtool("check", "rules", str(tmp_path / "groups.yaml"))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    expr = {r.get("alert"): r["expr"] for r in rule["spec"]["groups"][0]["rules"]}
    selector = '{job="demo-ai-app-metrics",namespace="serving"}'  # the ServiceMonitor's
    assert expr["AiAppTargetsDown"].splitlines()[-1] == f"absent(up{selector})"


@pytest.mark.parametrize("name", CASES)
def test_alert(name, tmp_path):
    result = run_case(CASES[name], RULES, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_case_that_expects_the_wrong_alerts_fails(tmp_path):
    """The harness can fail: the quiet 5xx case, expected to fire, does not pass."""
    quiet = CASES["5xx_ratio_of_1.9_percent_with_failing_health_probes_stays_quiet"]
    wrong = Case(quiet.alert, quiet.series, [("10m", firing({}, "1.9% of answers are 5xx"))])

    result = run_case(wrong, RULES, tmp_path)

    assert result.returncode == 1
    assert "alertname: AiAppHighServerErrorRatio, time: 10m" in result.stderr
    assert "got:[]" in result.stderr


# A value set through helm moves the threshold: a case quiet with the defaults fires.
THRESHOLDS = {
    "serverErrors.ratio=0.01": (
        {"serverErrors": {"ratio": 0.01}},
        "5xx_ratio_of_1.9_percent_with_failing_health_probes_stays_quiet",
        [("10m", firing({}, "1.9% of answers are 5xx (ai-app)"))],
    ),
    "clientErrors.ratio=0.05,for=5m": (
        {"clientErrors": {"ratio": 0.05, "for": "5m"}},
        "4xx_ratio_of_9.9_percent_with_scanners_on_unknown_paths_stays_quiet",
        [("20m", firing({}, "9.9% of answers are 4xx (ai-app)"))],
    ),
    "latency.p99Seconds=0.5": (
        {"latency": {"p99Seconds": 0.5}},
        "p99_latency_of_0.75s_with_slow_health_probes_stays_quiet",
        [("15m", firing({}, "p99 request latency is 750ms (ai-app)"))],
    ),
    "modelNotReady.for=2m": (
        {"modelNotReady": {"for": "2m"}},
        "model_not_ready_for_4m_stays_quiet",
        [("2m", []), ("4m", firing(NOT_READY_LABELS, NOT_READY_SUMMARY)), ("10m", [])],
    ),
    "versionSkew.for=5m": (
        {"versionSkew": {"for": "5m"}},
        "a_10m_rollout_to_version_2_stays_quiet",
        [("4m", []), ("8m", firing({}, "2 model versions served at once (ai-app)"))],
    ),
    "targetsDown.for=10m": (
        {"targetsDown": {"for": "10m"}},
        "every_target_down_for_2m_fires",
        [("5m", []), ("11m", [])],
    ),
}


@pytest.mark.parametrize("name", THRESHOLDS)
def test_a_threshold_set_through_helm_moves_the_alert(name, tmp_path):
    values, case_name, checks = THRESHOLDS[name]
    base = CASES[case_name]
    rules = rendered_rules(values, tmp_path)

    moved = run_case(Case(base.alert, base.series, checks), rules, tmp_path)
    as_before = run_case(base, rules, tmp_path)

    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert as_before.returncode == 1, f"{case_name} passes unchanged with {values}"

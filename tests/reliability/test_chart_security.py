"""checkov on the chart as helm renders it: 0 failed checks; every skip carries its reason."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import AUTH_MODES, EVERY_OPTION, render

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_COMMAND = [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "--output", "json"]
CASES = {
    "defaults": {},
    "every-option": EVERY_OPTION,
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    "ephemeral-volume": {"model": {"volume": {"type": "ephemeral", "size": "10Gi"}}},
    "claim-volume": {"model": {"volume": {"type": "persistentVolumeClaim", "claimName": "models"}}},
    # checkov (the pinned version) has no check on a hostPath directory; should one come, it
    # fails here and the chart gets a skip carrying the reason (the loader its only writer).
    "host-path-volume": {
        "model": {"volume": {"type": "hostPath", "hostPath": "/var/cache/ai-app"}}
    },
}
# Skips the chart keeps, each explained in the chart next to the object it concerns, and
# only while the choice it explains is made. Objects by checkov's kind and name: "Pod
# demo-ai-app" is the Deployment's pod template (the NetworkPolicy's check reads it).
APP, TEST_POD = "Deployment demo-ai-app", "Pod demo-ai-app-test-inference"
DEFAULT_SKIPS = {
    APP: {"CKV_K8S_43", "CKV_K8S_15"},
    TEST_POD: {"CKV_K8S_8", "CKV_K8S_9", "CKV2_K8S_6", "CKV_K8S_43", "CKV_K8S_15"},
}
EXPECTED_SKIPS = {
    "defaults": DEFAULT_SKIPS,
    "ephemeral-volume": DEFAULT_SKIPS,
    "claim-volume": DEFAULT_SKIPS,
    "host-path-volume": DEFAULT_SKIPS,
    "every-option": {
        TEST_POD: {"CKV_K8S_8", "CKV_K8S_9", "CKV2_K8S_6"},
    },
    "no-network-policy": {
        APP: {"CKV_K8S_43", "CKV_K8S_15"},
        "Pod demo-ai-app": {"CKV2_K8S_6"},
        TEST_POD: {"CKV_K8S_8", "CKV_K8S_9", "CKV2_K8S_6", "CKV_K8S_43", "CKV_K8S_15"},
    },
}


def checkov(objects: list[dict], workdir: Path) -> dict:
    """checkov's JSON report on these objects (offline: no download of Prisma guidelines)."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make checkov`")
    manifest = workdir / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run(
        [*CHECKOV_COMMAND, "--file", str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: some check failed
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", list(CASES))
def test_checkov_finds_no_failed_check_and_every_skip_is_explained(case, tmp_path):
    report = checkov(render(CASES[case]), tmp_path)
    summary = report["summary"]
    results = report["results"]
    skipped: dict[str, set[str]] = {}
    for check in results["skipped_checks"]:
        kind, _, name = check["resource"].split(".")[:3]
        skipped.setdefault(f"{kind} {name}", set()).add(check["check_id"])
        assert check["check_result"]["suppress_comment"].strip(), check["check_id"]
    print(
        f"\nCHECKOV {case}: passed {summary['passed']}, failed {summary['failed']}, "
        f"skipped {summary['skipped']} over {summary['resource_count']} objects"
    )

    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    assert skipped == EXPECTED_SKIPS[case]


@pytest.mark.parametrize("mode", sorted(mode for mode in AUTH_MODES if AUTH_MODES[mode]))
def test_every_auth_mode_passes_checkov(mode, tmp_path):
    """The default mode (no values) is the "defaults" case above."""
    report = checkov(render(AUTH_MODES[mode]), tmp_path)
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}

    assert report["summary"]["failed"] == 0, [
        f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]
    ]
    assert ("CKV_K8S_35" in skipped) == (mode == "existingSecret")  # the Secret as env


def test_checkov_would_fail_a_privileged_container(tmp_path):
    """The scan can fail: the same objects with a privileged, root app container fail."""
    objects = render()
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    app["securityContext"] = {"privileged": True, "runAsUser": 0}

    failed = {c["check_id"] for c in checkov(objects, tmp_path)["results"]["failed_checks"]}

    assert {"CKV_K8S_16", "CKV_K8S_40"} <= failed  # privileged; low UID

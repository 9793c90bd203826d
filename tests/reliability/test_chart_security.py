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
# Skips the chart keeps, each explained in the chart next to the object it concerns.
EXPECTED_SKIPS = {
    "defaults": {
        "Deployment": {"CKV_K8S_43", "CKV_K8S_15"},
        "Pod": {"CKV_K8S_8", "CKV_K8S_9", "CKV2_K8S_6", "CKV_K8S_43", "CKV_K8S_15"},
    },
    "every-option": {
        "Deployment": set(),
        "Pod": {"CKV_K8S_8", "CKV_K8S_9", "CKV2_K8S_6"},
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


@pytest.mark.parametrize("values", [{}, EVERY_OPTION], ids=["defaults", "every-option"])
def test_checkov_finds_no_failed_check_and_every_skip_is_explained(values, request, tmp_path):
    case = request.node.callspec.id
    report = checkov(render(values), tmp_path)
    summary = report["summary"]
    results = report["results"]
    skipped: dict[str, set[str]] = {}
    for check in results["skipped_checks"]:
        kind = check["resource"].split(".")[0]
        skipped.setdefault(kind, set()).add(check["check_id"])
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
    assert {kind: ids for kind, ids in skipped.items() if ids} == {
        kind: ids for kind, ids in EXPECTED_SKIPS[case].items() if ids
    }


@pytest.mark.parametrize("mode", sorted(AUTH_MODES))
def test_every_auth_mode_passes_checkov(mode, tmp_path):
    report = checkov(render(AUTH_MODES[mode]), tmp_path)

    assert report["summary"]["failed"] == 0, [
        f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]
    ]


def test_checkov_would_fail_a_privileged_container(tmp_path):
    """The scan can fail: the same objects with a privileged, root app container fail."""
    objects = render()
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    app["securityContext"] = {"privileged": True, "runAsUser": 0}

    failed = {c["check_id"] for c in checkov(objects, tmp_path)["results"]["failed_checks"]}

    assert {"CKV_K8S_16", "CKV_K8S_40"} <= failed  # privileged; low UID

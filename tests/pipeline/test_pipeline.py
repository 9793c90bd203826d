"""azure-pipelines.yml checked by Microsoft's own language service and schema, and the make
targets it calls exist; the Dockerfiles pass hadolint."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.pipeline.prerequisites import require

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "azure-pipelines"
PIPELINE = REPO_ROOT / "azure-pipelines.yml"


def test_pipeline_has_no_problems_for_microsofts_language_service():
    # CI's clone always has shared/ beside it: absent there, this fails instead of skipping.
    require((SHARED / "validate.js").exists(), f"{SHARED} (the official schema and validator)")

    result = subprocess.run(
        ["node", str(SHARED / "validate.js"), str(PIPELINE)],
        env={**os.environ, "NODE_PATH": str(REPO_ROOT / "node_modules")},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("0 problems")


def make_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.MULTILINE))


def test_every_make_target_the_pipeline_calls_exists():
    code = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    called = set(re.findall(r"\bmake ([a-z][\w-]*)", code))

    assert {"test", "preflight"} <= called
    assert called <= make_targets(), called - make_targets()


def test_pipeline_stages_test_build_release_in_order_with_their_gates():
    pipeline = yaml.safe_load(PIPELINE.read_text())
    stages = {stage["stage"]: stage for stage in pipeline["stages"]}

    assert list(stages) == ["Test", "Mutation", "Build", "Release"]
    # The nightly mutation run reports beside the build; it never holds a release back.
    assert (stages["Build"]["dependsOn"], stages["Release"]["dependsOn"]) == ("Test", "Build")
    assert pipeline["schedules"][0]["always"] is False
    assert "refs/heads/main" in stages["Build"]["condition"]
    # When the Release stage runs: tests/pipeline/test_release_gate.py evaluates it.
    assert "variables.releasing" in stages["Release"]["condition"]
    tasks = [step.get("task") for step in stages["Test"]["jobs"][0]["steps"]]
    assert "PublishTestResults@2" in tasks
    release_job = stages["Release"]["jobs"][0]
    assert release_job["environment"] == "ai-app-production"
    script = release_job["strategy"]["runOnce"]["deploy"]["steps"][-1]["inputs"]["inlineScript"]
    assert script.index("make preflight") < script.index("helm upgrade --install")
    assert "--atomic" in script and "--wait" in script and "--history-max" in script


@pytest.mark.parametrize("dockerfile", ["Dockerfile.app", "Dockerfile.loader"])
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(REPO_ROOT / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, str(REPO_ROOT / dockerfile)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("dockerfile", ["Dockerfile.app", "Dockerfile.loader"])
def test_images_are_multi_stage_non_root_and_take_a_base_image(dockerfile):
    text = (REPO_ROOT / dockerfile).read_text()

    assert text.count("FROM ${BASE_IMAGE}") == 2
    assert "ARG BASE_IMAGE=python:3.12-slim" in text
    assert "USER 10001:10001" in text
    assert "--mount=type=secret,id=pip_ca" in text
    assert "org.opencontainers.image.revision" in text


@pytest.mark.parametrize(
    ("dockerfile", "group"), [("Dockerfile.app", "app"), ("Dockerfile.loader", "loader")]
)
def test_images_install_only_their_groups_lock_with_hashes(dockerfile, group):
    text = (REPO_ROOT / dockerfile).read_text().replace("\\\n", " ")
    installs = re.findall(r"pip install [^&]*", text)

    assert f"COPY requirements/{group}.txt requirements/" in text
    assert len(installs) == 1
    assert re.fullmatch(
        rf"pip install .*--require-hashes --no-deps -r requirements/{group}\.txt\s*", installs[0]
    )
    assert "pyproject.toml" not in text


def test_the_nightly_mutation_run_publishes_the_report_make_mutation_writes():
    pipeline = yaml.safe_load(PIPELINE.read_text())
    stage = next(s for s in pipeline["stages"] if s["stage"] == "Mutation")
    (job,) = stage["jobs"]
    scripts = [step["script"] for step in job["steps"] if "script" in step]
    (publish,) = [s for s in job["steps"] if s.get("task") == "PublishPipelineArtifact@1"]
    recipe = subprocess.run(
        ["make", "-n", "mutation", "REPORTS=reports"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "eq(variables['Build.Reason'], 'Schedule')" in stage["condition"]
    assert scripts == ["make mutation"]
    assert f"--report {publish['inputs']['targetPath']}" in recipe
    assert publish["condition"] == "succeededOrFailed()"

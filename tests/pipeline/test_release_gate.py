"""The reliability gate runs before every release, and its results reach the test report.
The pipeline's conditions are evaluated here for each way a run starts
(tests/pipeline/expressions.py); the reliability step's own command runs with real make and
pytest."""

import fnmatch
import re
import shlex
import subprocess

import pytest

from tests.pipeline import pipeline_file
from tests.pipeline.expressions import compile_time, evaluate, variable_value

MAIN = "refs/heads/main"


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return pipeline_file.load()


def reliability_step(pipeline: dict) -> dict:
    (job,) = pipeline_file.stages(pipeline)["Test"]["jobs"]
    (step,) = [s for s in job["steps"] if "make reliability" in s.get("script", "")]
    return step


def publish_inputs(pipeline: dict) -> dict:
    (job,) = pipeline_file.stages(pipeline)["Test"]["jobs"]
    (step,) = [s for s in job["steps"] if s.get("task") == "PublishTestResults@2"]
    return step["inputs"]


def what_runs(pipeline: dict, reason: str, branch: str, release: bool) -> dict[str, bool]:
    """Whether the reliability step and the Release stage run for a run started this way
    (every step and stage that runs succeeds)."""
    parameters = {"release": release}
    variables = {"Build.Reason": reason, "Build.SourceBranch": branch}
    for variable in pipeline["variables"]:
        if "name" in variable:
            text = compile_time(str(variable["value"]), parameters)
            variables[variable["name"]] = variable_value(text, variables)

    def holds(condition: str, dependencies_succeeded: bool) -> bool:
        return evaluate(compile_time(condition, parameters), variables, dependencies_succeeded)

    ran: dict[str, bool] = {}
    previous: list[str] = []
    for stage in pipeline["stages"]:
        depends_on = stage.get("dependsOn", previous)
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        succeeded = all(ran[name] for name in depends_on)
        ran[stage["stage"]] = holds(stage.get("condition", "succeeded()"), succeeded)
        previous = [stage["stage"]]
    step = reliability_step(pipeline)
    return {
        "reliability": ran["Test"] and holds(step.get("condition", "succeeded()"), True),
        "release": ran["Release"],
    }


@pytest.mark.parametrize(
    ("reason", "branch", "release", "releases"),
    [
        ("Schedule", MAIN, False, True),
        ("Manual", MAIN, True, True),
        ("Manual", MAIN, False, False),
        ("IndividualCI", MAIN, False, False),
        ("BatchedCI", MAIN, False, False),
        ("PullRequest", "refs/pull/7/merge", False, False),
        ("Manual", "refs/heads/feature/x", True, False),
    ],
)
def test_the_reliability_gate_runs_exactly_when_a_release_does(
    pipeline, reason, branch, release, releases
):
    assert what_runs(pipeline, reason, branch, release) == {
        "reliability": releases,
        "release": releases,
    }


@pytest.mark.parametrize("target", ["test", "reliability"])
def test_each_test_run_writes_junit_where_the_report_reads_it(pipeline, target):
    """The step runs the target; the target's own recipe (make -n, the real Makefile) names
    the JUnit file, and the publish step's pattern must match it."""
    (job,) = pipeline_file.stages(pipeline)["Test"]["jobs"]
    steps = [step.get("script", "") for step in job["steps"]]
    assert any(shlex.split(script)[-1:] == [target] for script in steps), steps
    pattern = publish_inputs(pipeline)["testResultsFiles"]
    recipe = subprocess.run(
        ["make", "-n", target, "REPORTS=reports"],
        cwd=pipeline_file.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    (junit,) = re.findall(r"--junitxml=(\S+)", recipe)
    assert fnmatch.fnmatch(junit, pattern), (junit, pattern)

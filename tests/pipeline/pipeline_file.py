"""azure-pipelines.yml as the tests read it: its stages, steps, inline scripts and macros."""

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "azure-pipelines.yml"

# `$(name)`: a macro Azure Pipelines replaces with the variable's value before a step runs.
MACRO = re.compile(r"\$\(([A-Za-z_][\w.-]*)\)")


def load() -> dict:
    return yaml.safe_load(PIPELINE.read_text())


def stages(pipeline: dict) -> dict[str, dict]:
    return {stage["stage"]: stage for stage in pipeline["stages"]}


def job_steps(job: dict) -> list[dict]:
    """A job's steps; a deployment job's are those of its runOnce deploy hook."""
    if "steps" in job:
        return job["steps"]
    return job["strategy"]["runOnce"]["deploy"]["steps"]


def jobs(pipeline: dict) -> Iterator[tuple[str, dict]]:
    for stage in pipeline["stages"]:
        for job in stage["jobs"]:
            yield stage["stage"], job


def inline_scripts(pipeline: dict) -> Iterator[tuple[str, str]]:
    """(where, bash text) of every script step, bash step and inline task script."""
    for stage, job in jobs(pipeline):
        for number, step in enumerate(job_steps(job), 1):
            where = f"{stage}/{job.get('job') or job.get('deployment')} step {number}"
            if "script" in step or "bash" in step:
                yield where, step.get("script") or step["bash"]
            inputs = step.get("inputs", {})
            if "inlineScript" in inputs:
                assert inputs.get("scriptType") == "bash", f"{where}: only bash is checked"
                yield where, inputs["inlineScript"]


def step_named(pipeline: dict, display_name: str) -> dict:
    for _, job in jobs(pipeline):
        for step in job_steps(job):
            if step.get("displayName") == display_name:
                return step
    raise AssertionError(f"no step {display_name!r} in {PIPELINE.name}")


def release_script(pipeline: dict) -> str:
    """The Release stage's helm script (the AzureCLI@2 step of its deployment job)."""
    (job,) = stages(pipeline)["Release"]["jobs"]
    (step,) = [s for s in job_steps(job) if s.get("task") == "AzureCLI@2"]
    return step["inputs"]["inlineScript"]


def expand_macros(text: str, values: dict[str, str]) -> str:
    """Replace `$(name)` as Azure Pipelines does; a macro with no value here is an error, so
    a new macro in the pipeline needs a realistic value in the test that runs it."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no test value for the macro $({name})")
        return values[name]

    return MACRO.sub(value, text)

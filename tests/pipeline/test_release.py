"""The Release stage's script, run by bash with the real helm (tests/pipeline/release_run.py):
what it deploys, how it gets kubelogin, and what a failed `helm test` does."""

import itertools
import re
import shlex
import subprocess

import pytest
import yaml

from tests.pipeline import pipeline_file
from tests.pipeline.release_run import (
    HELM_V3,
    HELM_V4,
    macro_values,
    run_release,
    template_args,
)

README = pipeline_file.REPO_ROOT / "README.md"
# The README's placeholders, by their first word.
PLACEHOLDERS = {
    "managed": "0b7a2c4e-1d2f-4e8a-9c3b-5f6d7e8a9b0c",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}

HELMS = pytest.mark.parametrize("helm", [HELM_V3, HELM_V4], ids=["helm3", "helm4"])


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return pipeline_file.load()


def release(pipeline: dict, tmp_path, **kwargs):
    script = pipeline_file.release_script(pipeline)
    return run_release(script, macro_values(pipeline), tmp_path, **kwargs)


def deployment(manifests: str) -> dict:
    (found,) = [o for o in yaml.safe_load_all(manifests) if o and o["kind"] == "Deployment"]
    return found


def images(manifests: str) -> dict[str, str]:
    spec = deployment(manifests)["spec"]["template"]["spec"]
    return {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}


def typed_by_helm(set_args: list[str]) -> list[str]:
    """The `--set` values helm turns into something other than a string: an integer (no
    leading zero), true/false or null (helm's strvals parser)."""
    typed = []
    for flag, value in itertools.pairwise(set_args):
        if flag == "--set":
            for pair in value.split(","):
                literal = pair.split("=", 1)[1]
                if re.fullmatch(r"-?[1-9]\d*|0|true|false|null", literal):
                    typed.append(pair)
    return typed


@HELMS
def test_the_release_deploys_the_images_of_this_build_whose_id_is_a_number(
    pipeline, tmp_path, helm
):
    run = release(pipeline, tmp_path, helm=helm)

    assert run.returncode == 0, run.output
    assert images(run.rendered) == {
        "model-loader": "aiappprod.azurecr.io/ai-app-loader:20241",
        "app": "aiappprod.azurecr.io/ai-app:20241",
    }
    (upgrade,) = run.called("helm", "upgrade")
    assert typed_by_helm(upgrade) == [], "pass strings with --set-string"


def loader_env(manifests: str) -> dict[str, str]:
    spec = deployment(manifests)["spec"]["template"]["spec"]
    (loader,) = [c for c in spec["initContainers"] if c["name"] == "model-loader"]
    return {e["name"]: e.get("value") for e in loader["env"]}


def test_the_preflight_checks_the_model_the_release_deploys(pipeline, tmp_path):
    run = release(pipeline, tmp_path, helm=HELM_V3)
    assert run.returncode == 0, run.output
    (preflight,) = run.called("make", "preflight")
    settings = dict(arg.split("=", 1) for arg in preflight[2:])

    # What `make preflight` renders (the Makefile: $(HELM) template ... $(HELM_ARGS)):
    values = ["--values", settings["VALUES"], *shlex.split(settings["HELM_ARGS"])]
    rendered = subprocess.run(
        [str(HELM_V3), "template", "preflight", "chart", *values],
        cwd=pipeline_file.REPO_ROOT,
        capture_output=True,
        text=True,
    )

    (upgrade,) = run.called("helm", "upgrade")
    assert settings["HELM"] == upgrade[0]  # the helm the upgrade runs (HelmInstaller's)
    assert rendered.returncode == 0, rendered.stderr
    assert loader_env(rendered.stdout) == loader_env(run.rendered)
    assert loader_env(run.rendered)["AZURE_STORAGE_ACCOUNT_URL"] == (
        "https://aiappmodels.blob.core.windows.net"
    )


def readme_helm_command() -> list[str]:
    """The example `helm upgrade` in the README's "Helm chart" section, its placeholders
    filled with realistic values."""
    section = README.read_text().split("\n## Helm chart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    filled = re.sub(
        r"<([^>]+)>",
        lambda m: PLACEHOLDERS[m.group(1).split()[0]],
        block.replace("\\\n", " "),
    )
    return shlex.split(filled, comments=True)


@HELMS
def test_the_readme_helm_example_deploys_its_numeric_tag(tmp_path, helm):
    command = readme_helm_command()
    assert command[:3] == ["helm", "upgrade", "--install"]

    result = subprocess.run(
        [str(helm), *template_args(command[1:])],
        cwd=pipeline_file.REPO_ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert set(images(result.stdout).values()) == {
        "myacr.azurecr.io/ai-app-loader:1234",
        "myacr.azurecr.io/ai-app:1234",
    }
    assert typed_by_helm(command) == [], "pass strings with --set-string"


def option(call: list[str], flag: str) -> str:
    return call[call.index(flag) + 1]


def test_kubelogin_is_a_pinned_release_installed_where_the_job_can_write(pipeline, tmp_path):
    run = release(pipeline, tmp_path, helm=HELM_V3)

    assert run.returncode == 0, run.output
    (install,) = run.called("az", "aks", "install-cli")
    pinned = macro_values(pipeline)
    # Only "latest" (az's default) makes az ask GitHub's API which release that is.
    assert option(install, "--kubelogin-version") == pinned["kubeloginVersion"]
    assert option(install, "--client-version") == pinned["kubectlVersion"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["kubeloginVersion"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["kubectlVersion"])
    (convert,) = run.called("kubelogin", "convert-kubeconfig")
    installed = option(install, "--kubelogin-install-location")
    assert convert[0] == installed
    assert installed.startswith(str(tmp_path / "agent-temp"))


HISTORY = [  # what `helm history -o json` answers after this run's upgrade (revision 4)
    {"revision": 1, "status": "superseded", "description": "Install complete"},
    {"revision": 2, "status": "superseded", "description": "Upgrade complete"},
    {"revision": 3, "status": "failed", "description": "Upgrade failed: by hand, no --atomic"},
    {"revision": 4, "status": "deployed", "description": "Upgrade complete"},
]


def test_a_passing_helm_test_keeps_the_new_release(pipeline, tmp_path):
    run = release(pipeline, tmp_path, helm=HELM_V3, history=HISTORY)

    assert run.returncode == 0, run.output
    assert run.called("helm", "rollback") == []


def test_a_failing_helm_test_shows_its_logs_and_rolls_back_to_the_revision_that_served(
    pipeline, tmp_path
):
    run = release(pipeline, tmp_path, helm=HELM_V3, test_outcome="fail", history=HISTORY)

    assert run.returncode != 0
    (test,) = run.called("helm", "test")
    assert "--logs" in test
    assert "POD LOGS: ai-app-test-inference" in run.output
    (rollback,) = run.called("helm", "rollback")
    assert rollback[2:4] == ["ai-app", "2"]  # not 3: that one failed
    assert "--wait" in rollback
    assert option(rollback, "--namespace") == "serving"
    assert "rolled back to revision 2" in run.output


def test_a_failing_helm_test_on_the_first_install_fails_and_keeps_it(pipeline, tmp_path):
    first = [{"revision": 1, "status": "deployed", "description": "Install complete"}]

    run = release(pipeline, tmp_path, helm=HELM_V3, test_outcome="fail", history=first)

    assert run.returncode != 0
    assert run.called("helm", "rollback") == []
    assert "no earlier revision" in run.output

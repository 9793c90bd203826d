"""`make preflight`: a release never starts for a model version that is not in Blob, and it
checks the very version, digest and container the chart's init container will fetch."""

import shlex
import subprocess
import sys

import pytest
import yaml

from tests.chart.conftest import REPO_ROOT
from tests.support.loader_cli import run_loader
from tests.support.log_audit import audit

CONTAINER = "preflight"
# The loader gets the connection string from this Secret in the pod, from our env here.
AUTH = {"mode": "existingSecret", "existingSecret": {"name": "blob"}}


def preflight(values_file, env, helm_args: list[str] = ()) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "preflight",
            f"VALUES={values_file}",
            f"HELM_ARGS={shlex.join(helm_args)}",
            f"PY={sys.executable}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    audit("make preflight", result.stdout + result.stderr)
    return result


@pytest.fixture(scope="module")
def published(azurite, tmp_path_factory) -> tuple[dict, dict[str, str]]:
    """Versions 3 and 20240101 of `digits` in a container that isn't the default one; the env
    names no container, so only the chart's storage.container can point the check there."""
    env = azurite.loader_env(MODEL_CONTAINER=CONTAINER)
    source = tmp_path_factory.mktemp("model")
    (source / "model.onnx").write_bytes(b"onnx bytes")
    digests = {}
    for version in ("3", "20240101"):
        result = run_loader(env, "publish", str(source), "--name", "digits", "--version", version)
        assert result.returncode == 0, result.stderr
        digests[version] = result.stdout.strip()
    env.pop("MODEL_CONTAINER")
    return digests, env


def write_values(tmp_path, name: str, model: dict, container: str = CONTAINER):
    values_file = tmp_path / f"{name}.yaml"
    values_file.write_text(
        yaml.safe_dump({"model": model, "storage": {"container": container}, "auth": AUTH})
    )
    return values_file


@pytest.mark.parametrize(
    ("case", "model", "helm_args", "expected"),
    [
        ("pinned", {"name": "digits", "version": "3", "digest": "pinned"}, [], 0),
        ("unpinned", {"name": "digits", "version": "3"}, [], 0),
        ("set-integer", {"name": "digits", "version": "1"}, ["--set", "model.version=20240101"], 0),
        ("set-string", {"name": "digits", "version": "1"}, ["--set-string", "model.version=3"], 0),
        ("missing", {"name": "digits", "version": "4"}, [], 3),
        ("other-digest", {"name": "digits", "version": "3", "digest": "c" * 64}, [], 5),
    ],
)
def test_preflight_checks_what_the_chart_renders(
    published, tmp_path, case, model, helm_args, expected
):
    digests, env = published
    if model.get("digest") == "pinned":
        model = {**model, "digest": digests["3"]}

    result = preflight(write_values(tmp_path, case, model), env, helm_args)

    assert result.returncode == (0 if expected == 0 else 2), (case, result.stderr)
    if expected == 0:
        version = "20240101" if case == "set-integer" else "3"
        assert result.stdout.strip().endswith(digests[version])
    else:
        assert f"preflight] Error {expected}" in result.stderr  # the loader's exit code
        assert "model_loader: error:" in result.stderr


def test_preflight_honours_storage_container(published, tmp_path):
    _, env = published
    values_file = write_values(tmp_path, "other", {"name": "digits", "version": "3"}, "models")

    result = preflight(values_file, env)

    assert result.returncode == 2
    assert "preflight] Error 3" in result.stderr  # not in `models`, though it is in `preflight`


@pytest.mark.parametrize("version", [20240101, 1.0, 3])
def test_a_numeric_version_in_a_values_file_is_refused_naming_the_fix(published, tmp_path, version):
    _, env = published

    result = preflight(
        write_values(tmp_path, "numeric", {"name": "digits", "version": version}), env
    )

    assert result.returncode != 0
    assert "model.version must be a quoted string" in result.stderr
    assert "model_loader" not in result.stderr  # refused before anything is checked

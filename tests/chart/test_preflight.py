"""`make preflight`: a release never starts for a model version that is not in Blob."""

import subprocess
import sys

import yaml

from tests.chart.conftest import REPO_ROOT
from tests.support.loader_cli import run_loader


def preflight(values_file, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "preflight",
            f"VALUES={values_file}",
            f"PY={sys.executable}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_preflight_passes_for_a_published_pin_and_fails_otherwise(azurite, tmp_path):
    env = azurite.loader_env(MODEL_CONTAINER="preflight")
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.onnx").write_bytes(b"onnx bytes")
    published = run_loader(env, "publish", str(source), "--name", "digits", "--version", "3")
    assert published.returncode == 0, published.stderr
    digest = published.stdout.strip()
    cases = {
        "pinned": ({"name": "digits", "version": "3", "digest": digest}, 0),
        "unpinned": ({"name": "digits", "version": 3}, 0),
        "missing": ({"name": "digits", "version": "4"}, 3),
        "other-digest": ({"name": "digits", "version": "3", "digest": "c" * 64}, 5),
    }
    for case, (model, expected) in cases.items():
        values_file = tmp_path / f"{case}.yaml"
        values_file.write_text(yaml.safe_dump({"model": model}))

        result = preflight(values_file, env)

        assert result.returncode == (0 if expected == 0 else 2), (case, result.stderr)
        if expected == 0:
            assert result.stdout.strip().endswith(digest)
        else:
            assert f"preflight] Error {expected}" in result.stderr  # the loader's exit code
            assert "model_loader: error:" in result.stderr

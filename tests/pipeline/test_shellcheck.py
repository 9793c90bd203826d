"""Every inline script in azure-pipelines.yml passes shellcheck, macros read as the text Azure
Pipelines puts in their place."""

import re
import shutil
import subprocess

import pytest

from tests.pipeline import pipeline_file
from tests.pipeline.prerequisites import require

SCRIPTS = dict(pipeline_file.inline_scripts(pipeline_file.load()))


def without_macros(script: str) -> str:
    """Each `$(name)` as the plain word Azure Pipelines substitutes before bash runs."""
    return pipeline_file.MACRO.sub(lambda m: "AZP_" + re.sub(r"\W", "_", m.group(1)), script)


def test_the_pipeline_has_inline_scripts_to_check():
    assert len(SCRIPTS) >= 3
    assert any("helm upgrade" in script for script in SCRIPTS.values())


@pytest.mark.parametrize("where", SCRIPTS)
def test_inline_script_passes_shellcheck(where):
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck (Debian package, make setup installs it)")

    result = subprocess.run(
        [shellcheck, "--shell=bash", "--format=gcc", "-"],
        input=without_macros(SCRIPTS[where]),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, f"{where}:\n{result.stdout}{result.stderr}"

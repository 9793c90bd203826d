"""chart/README.md's parameter table is generated from values.yaml: they never drift."""

import shutil
import subprocess

from tests.chart.conftest import CHART, REPO_ROOT


def test_parameter_table_matches_the_values_file(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)

    subprocess.run(
        [
            str(REPO_ROOT / "node_modules" / ".bin" / "readme-generator"),
            "--values",
            str(CHART / "values.yaml"),
            "--readme",
            str(readme),
        ],
        check=True,
        capture_output=True,
        text=True,
    )

    assert readme.read_text() == (CHART / "README.md").read_text(), "run `make chart-docs`"
    assert "| `model.version`" in readme.read_text()

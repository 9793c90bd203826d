"""A missing prerequisite skips a pipeline test on a laptop and fails it in CI."""

import pytest

from tests.pipeline.prerequisites import require

CI_MARKERS = ("CI", "TF_BUILD")


@pytest.mark.parametrize(
    ("variable", "value"), [("CI", "true"), ("TF_BUILD", "True")], ids=["CI", "azure-pipelines"]
)
def test_a_missing_prerequisite_fails_in_ci(monkeypatch, variable, value):
    for name in CI_MARKERS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)

    with pytest.raises(pytest.fail.Exception, match="shellcheck is missing in CI"):
        require(False, "shellcheck")


def test_a_missing_prerequisite_skips_elsewhere(monkeypatch):
    for name in CI_MARKERS:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(pytest.skip.Exception, match="shellcheck is missing here"):
        require(False, "shellcheck")


def test_a_present_prerequisite_lets_the_test_run(monkeypatch):
    monkeypatch.setenv("CI", "true")

    require(True, "shellcheck")

"""Two releases at once (the nightly and a manual one) wait for each other: the environment's
exclusive lock (set in Azure DevOps) with lockBehavior sequential (set here)."""

from tests.pipeline import pipeline_file


def test_releases_take_the_environment_lock_in_turn():
    pipeline = pipeline_file.load()
    stages = pipeline_file.stages(pipeline)

    assert pipeline["lockBehavior"] == "sequential"  # runLatest would cancel the older run
    assert all(stage.get("lockBehavior", "sequential") == "sequential" for stage in stages.values())
    (job,) = stages["Release"]["jobs"]
    assert job["environment"] == "ai-app-production"


def test_the_lock_check_it_needs_is_documented_where_it_is_set():
    header = pipeline_file.PIPELINE.read_text().split("\ntrigger:", 1)[0]
    readme = (pipeline_file.REPO_ROOT / "README.md").read_text()
    ci_section = readme.split("\n## CI/CD", 1)[1].split("\n## ", 1)[0]

    for text in (header, ci_section):
        assert "Exclusive lock" in text
        assert "lockBehavior" in text
        assert "ai-app-production" in text

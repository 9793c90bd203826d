"""The Test stage runs on an image whose podman plays the end-to-end test's pod, and the
e2e test skips, saying why, on a podman too old for it."""

import pytest

from local.podman import podman_version, why_podman_is_too_old
from tests.pipeline import pipeline_file

# podman on Microsoft-hosted Ubuntu images: actions/runner-images, images/ubuntu/
# Ubuntu2204-Readme.md and Ubuntu2404-Readme.md (the distribution's podman, restored by
# actions/runner-images#14642 in September 2026 after a short-lived 5.8.4).
HOSTED_PODMAN = {"ubuntu-22.04": "3.4.4", "ubuntu-24.04": "4.9.3"}


@pytest.mark.parametrize(
    ("output", "version", "usable"),
    [
        ("podman version 3.4.4\n", (3, 4, 4), False),
        ("podman version 4.2.1\n", (4, 2, 1), False),
        ("podman version 4.3.1\n", (4, 3, 1), True),
        ("podman version 4.9.3\n", (4, 9, 3), True),
        ("podman version 5.0.0-dev\n", (5, 0, 0), True),
        ("podman-remote version 4.3\n", (4, 3, 0), True),
    ],
)
def test_podman_version_gate(output, version, usable):
    assert podman_version(output) == version
    reason = why_podman_is_too_old(output)
    if usable:
        assert reason is None
    else:
        assert reason.startswith(f"podman {'.'.join(map(str, version))} is older than 4.3")


def test_an_unreadable_podman_version_is_a_reason_not_a_crash():
    assert podman_version("Error: no such command\n") is None
    assert why_podman_is_too_old("Error: no such command\n").startswith("cannot read")


def test_the_job_that_runs_make_test_has_a_podman_for_the_end_to_end_test():
    pipeline = pipeline_file.load()
    (job,) = pipeline_file.stages(pipeline)["Test"]["jobs"]
    assert any("make test" in step.get("script", "") for step in job["steps"])

    podman = HOSTED_PODMAN[job["pool"]["vmImage"]]

    assert why_podman_is_too_old(f"podman version {podman}") is None


def test_every_job_runs_on_the_image_the_tests_ran_on():
    images = {job["pool"]["vmImage"] for _, job in pipeline_file.jobs(pipeline_file.load())}

    assert images == {"ubuntu-24.04"}

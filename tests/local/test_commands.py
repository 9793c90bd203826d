"""The local system's commands without a pod: the history `rollback` reads, and the one-line
errors of `python -m local` (the pod itself: tests/e2e/test_local_loop.py)."""

import subprocess
import sys

from local.history import History
from local.stack import REPO_ROOT, LocalStack


def run_local(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "local", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_history_numbers_revisions_and_rollback_goes_to_the_one_before(tmp_path):
    history = History(tmp_path)
    assert history.current() is None and history.previous() is None

    history.record("digits", "1", "a" * 64, "demo")
    assert history.previous() is None  # nothing to roll back to yet
    history.record("digits", "2", "b" * 64, "deploy")
    history.record("digits", "1", "a" * 64, "rollback to 1")

    reread = History(tmp_path)
    assert [r.revision for r in reread.revisions()] == [1, 2, 3]
    assert (reread.current().version, reread.previous().version) == ("1", "2")
    assert reread.current().description == "rollback to 1"


def test_commands_without_a_local_system_say_so_in_one_line(tmp_path):
    for command in (["status"], ["rollback"], ["deploy", "--name", "m", "--version", "1"]):
        result = run_local("--workdir", str(tmp_path), *command)

        assert result.returncode == 1
        assert result.stderr == (
            f"local: error: no local system in {tmp_path}: run `make demo` first\n"
        )


def test_a_missing_argument_is_one_line():
    result = run_local("publish", "--dir", "x", "--name", "m")

    assert result.returncode == 1
    assert result.stderr == "local: error: the following arguments are required: --version\n"


def test_rollback_with_one_revision_has_nothing_to_go_back_to(tmp_path):
    LocalStack(tmp_path, 1, 2, 3, tmp_path / "model", release="t").save()  # as demo does
    History(tmp_path).record("digits", "1", "a" * 64, "demo")

    result = run_local("--workdir", str(tmp_path), "rollback")

    assert result.returncode == 1
    assert result.stderr == "local: error: nothing to roll back to: only one revision\n"

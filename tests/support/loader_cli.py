"""Running the loader's CLI for real, as the chart's init container does."""

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.log_audit import audit

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LoaderRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The one plain (non-JSON) line a failure prints on stderr."""
        lines = [line for line in self.stderr.splitlines() if not line.startswith("{")]
        assert len(lines) == 1, f"expected exactly one error line, got: {lines}"
        return lines[0]


def start_loader(env: dict[str, str], *args: str) -> subprocess.Popen:
    """The CLI in the background, for a test that breaks something while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "model_loader", *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_loader(process: subprocess.Popen, timeout: float = 120) -> LoaderRun:
    """Its outcome, with both outputs audited for secrets."""
    stdout, stderr = process.communicate(timeout=timeout)
    source = "model_loader (background)"
    return LoaderRun(process.returncode, audit(source, stdout), audit(source, stderr))


def stop_loaders(processes: list[subprocess.Popen]) -> None:
    """Ends the loaders a test started that are still running (paused ones included)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.communicate()


def run_loader(env: dict[str, str], *args: str, timeout: float = 120) -> LoaderRun:
    command = [sys.executable, "-m", "model_loader", *args]
    return run_audited(command, env, f"model_loader {' '.join(args[:1])}", timeout)


def run_audited(
    command: list[str], env: dict[str, str], source: str, timeout: float = 120
) -> LoaderRun:
    """Any command that runs the loader (e.g. under `unshare`), to its exit, outputs audited."""
    result = subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    return LoaderRun(result.returncode, audit(source, result.stdout), audit(source, result.stderr))

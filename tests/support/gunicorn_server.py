"""A real gunicorn serving `app:create_app()` on free loopback ports (the app's and the
metrics one)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from local.net import free_port
from tests.support.log_audit import audit

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "app.server", "-c", "app/gunicorn.conf.py", "app:create_app()"]


def run_to_exit(env: dict[str, str], home: Path, timeout: float = 20) -> tuple[int | None, str]:
    """Run the real server with only `env` (and a free APP_PORT unless given): its exit code,
    None if it is still up after `timeout` (then killed), and its output."""
    env = {
        "PATH": "/usr/bin:/bin",
        **env,
        "APP_PORT": env.get("APP_PORT", str(free_port())),
        "METRICS_PORT": env.get("METRICS_PORT", str(free_port())),
        "HOME": str(home),
    }
    process = subprocess.Popen(
        SERVER, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, audit("gunicorn", output)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return None, audit("gunicorn", output)


@dataclass
class GunicornServer:
    """Start with the model env; `url` is the base URL. Use as a context manager."""

    env: dict[str, str]
    workers: int = 2
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    scratch: Path | None = None  # the log and PROMETHEUS_MULTIPROC_DIR, removed by stop()
    _final_log: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 60.0) -> "GunicornServer":
        self.scratch = Path(tempfile.mkdtemp(prefix="gunicorn-"))
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(self.scratch / "prometheus"),
            **self.env,
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "WEB_CONCURRENCY": str(self.workers),
        }
        self.log_path = self.scratch / "gunicorn.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                SERVER,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Live, with every worker forked: the master forks them one by one, so the first
        may answer while the next is not there yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.process.returncode}: {self.logs()}")
            try:
                live = requests.get(self.url + "/v2/health/live", timeout=1).ok
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy CPU
                live = False
            if live and len(self.worker_pids()) == self.workers:
                return
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn not up after {timeout}s: {self.logs()}")

    def logs(self) -> str:
        if self._final_log is not None:
            return self._final_log
        return audit("gunicorn", self.log_path.read_text()) if self.log_path else ""

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the master only, as the kubelet sends it; SIGKILL to all after timeout."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.scratch and self._final_log is None:
            self._final_log = self.logs()  # audited for secrets, whatever the test read
            shutil.rmtree(self.scratch)

    def __enter__(self) -> "GunicornServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

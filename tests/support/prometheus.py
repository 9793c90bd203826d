"""A real Prometheus (Debian `prometheus`) on a free loopback port, scraping given targets."""

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from local.net import free_port, wait_for_port

JOB = "ai-app"  # the scrape job's name: the `job` label of every series it scrapes


@dataclass
class Prometheus:
    targets: list[str]
    rule_files: list[Path] = field(default_factory=list)  # evaluated every second
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        self.workdir = Path(tempfile.mkdtemp(prefix="prometheus-"))
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        """/-/ready: the port opens before the TSDB is up, and queries answer 503 until then."""
        deadline = time.monotonic() + timeout
        while requests.get(self.url + "/-/ready", timeout=5).status_code != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready (exit code {self.process.poll()})")
            time.sleep(0.1)

    def query(self, expression: str, timeout: float = 30) -> list[dict]:
        """The instant-query result, waiting until it is non-empty (scrapes take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            response = requests.get(
                self.url + "/api/v1/query", params={"query": expression}, timeout=5
            )
            result = response.json()["data"]["result"]
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def alerts(self, name: str) -> list[dict]:
        """The active (pending or firing) alerts of this name, as /api/v1/alerts lists them."""
        response = requests.get(self.url + "/api/v1/alerts", timeout=5)
        return [a for a in response.json()["data"]["alerts"] if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The whole system on this machine: Azurite, the sample model, the chart's pod under podman.

`make demo` runs `python -m tests.support.stack up`, `make down` runs `... down`; the
end-to-end test drives the same LocalStack, so it checks exactly what the demo runs.
"""

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from tests.support.azurite import Azurite
from tests.support.loader_cli import run_loader
from tests.support.log_audit import audit
from tests.support.podman import podman

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "digits"


def helm_binary() -> str:
    for candidate in (os.environ.get("HELM_V4"), REPO_ROOT / ".tools" / "helm-v4" / "helm"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return "helm"


@dataclass
class LocalStack:
    workdir: Path
    app_port: int
    azurite_port: int
    metrics_port: int
    release: str = "demo"
    app_image: str = os.environ.get("APP_IMAGE", "localhost/ai-app:dev")
    loader_image: str = os.environ.get("LOADER_IMAGE", "localhost/ai-app-loader:dev")
    _server: Azurite | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def pod_name(self) -> str:
        return f"{self.release}-ai-app-pod-0"

    @property
    def secret_name(self) -> str:
        return f"{self.release}-blob"

    @property
    def blob_store(self) -> Azurite:
        return Azurite(port=self.azurite_port, workdir=self.workdir / "azurite")

    def loader_env(self) -> dict[str, str]:
        return self.blob_store.loader_env(MODEL_LOADER_LOG_LEVEL="WARNING")

    # ------------------------------------------------------------------ blob store
    def start_blob_store(self) -> None:
        """Azurite in the background (it outlives `make demo`); its pid in the workdir."""
        (self.workdir / "azurite").mkdir(parents=True, exist_ok=True)
        self._server = self.blob_store.start()
        (self.workdir / "azurite.pid").write_text(str(self._server.process.pid))

    def stop_blob_store(self) -> None:
        """Stop our Azurite: the child we started, or the one a `make demo` left running."""
        pid_file = self.workdir / "azurite.pid"
        if self._server:
            self._server.stop(keep_data=True)
            self._server = None
        elif pid_file.exists():
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
                for _ in range(100):  # its files must be closed before the workdir goes
                    os.killpg(pid, 0)
                    time.sleep(0.1)
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)

    def sample_model_dir(self) -> Path:
        directory = self.workdir / "sample-model"
        if not (directory / "model.onnx").exists():
            subprocess.run(
                [sys.executable, "-m", "tests.support.sample_model", "--out", str(directory)],
                cwd=REPO_ROOT,
                check=True,
                capture_output=True,
            )
        return directory

    def publish(self, version: str, source: Path | None = None) -> str:
        """Publish a version (the sample model by default) and return its digest."""
        source = source or self.sample_model_dir()
        result = run_loader(
            self.loader_env(), "publish", str(source), "--name", MODEL_NAME, "--version", version
        )
        if result.returncode != 0:
            raise RuntimeError(f"publish {MODEL_NAME} {version} failed: {result.stderr}")
        return result.stdout.strip()

    # ------------------------------------------------------------------ the pod
    def values(self, version: str, digest: str) -> dict:
        app_repo, app_tag = self.app_image.rsplit(":", 1)
        loader_repo, loader_tag = self.loader_image.rsplit(":", 1)
        return {
            "replicaCount": 1,
            "image": {
                "app": {"repository": app_repo, "tag": app_tag, "pullPolicy": "Never"},
                "loader": {"repository": loader_repo, "tag": loader_tag, "pullPolicy": "Never"},
            },
            "model": {"name": MODEL_NAME, "version": version, "digest": digest},
            "auth": {"mode": "existingSecret", "existingSecret": {"name": self.secret_name}},
            "app": {
                "port": self.app_port,
                "listenAddress": "127.0.0.1",
                "workers": 2,
                "drainSeconds": 1,  # no load balancer to drain locally: quick replacements
            },
            "metrics": {"port": self.metrics_port},
            "tests": {"enabled": False},
        }

    def render(self, version: str, digest: str = "") -> list[dict]:
        """The chart's Deployment, adjusted for this machine's podman."""
        result = subprocess.run(
            [helm_binary(), "template", self.release, str(REPO_ROOT / "chart"), "--values", "-"],
            input=yaml.safe_dump(self.values(version, digest)),
            capture_output=True,
            text=True,
            check=True,
        )
        objects = [o for o in yaml.safe_load_all(result.stdout) if o]
        kept = [o for o in objects if o["kind"] == "Deployment"]
        spec = kept[0]["spec"]["template"]["spec"]
        # podman 4.3 applies the pod's restart policy to init containers: Always re-runs a
        # loader that succeeded forever, OnFailure retries a failed one forever.
        spec["restartPolicy"] = "Never"
        for container in spec["containers"]:
            container.pop("ports", None)  # host network: podman refuses port mappings
        for container in spec["initContainers"]:
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    reference["optional"] = False  # podman 4.3 skips optional secret refs
        return kept

    def create_secret(self) -> None:
        """The Secret the chart's existingSecret mode reads, in podman 4.3's format for
        kube play (a JSON map of key to base64 value)."""
        values = {
            "AZURE_STORAGE_CONNECTION_STRING": self.blob_store.connection_string(),
            "AZURE_STORAGE_SAS_TOKEN": "",
        }
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        podman("secret", "rm", self.secret_name, check=False)
        podman("secret", "create", self.secret_name, "-", input=json.dumps(encoded))

    def play(self, version: str, digest: str = "") -> subprocess.CompletedProcess:
        """Replace the pod with one for this version; returns kube play's result."""
        kube_file = self.workdir / "pod.yaml"
        self.remove_pod()
        kube_file.write_text(yaml.safe_dump_all(self.render(version, digest)))
        return podman("kube", "play", "--network", "host", str(kube_file), check=False)

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until /v2/health/ready answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} not ready after {timeout}s:\n{self.logs('app')}")

    def logs(self, container: str) -> str:
        result = podman("logs", f"{self.pod_name}-{container}", check=False)
        return audit(f"pod container {container}", result.stdout + result.stderr)

    def container_state(self, container: str) -> dict:
        result = podman(
            "inspect", f"{self.pod_name}-{container}", "--format", "{{json .State}}", check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def remove_pod(self) -> None:
        kube_file = self.workdir / "pod.yaml"
        if kube_file.exists():
            podman("kube", "down", str(kube_file), check=False)
        podman("pod", "rm", "--force", "--time", "5", self.pod_name, check=False)

    def up(self, version: str = "1") -> dict:
        """Everything `make demo` does; returns the figures it measured."""
        self.down()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_blob_store()
        digest = self.publish(version)
        self.create_secret()
        started = time.monotonic()
        played = self.play(version, digest)
        if played.returncode != 0:
            raise RuntimeError(
                f"podman kube play failed: {played.stderr}\n{self.logs('model-loader')}"
            )
        play_seconds = time.monotonic() - started
        ready_seconds = play_seconds + self.wait_ready()
        return {
            "digest": digest,
            "kube_play_seconds": play_seconds,
            "pod_ready_seconds": ready_seconds,
        }

    def down(self) -> None:
        """Remove everything up() made: the pod, the secret, Azurite and the workdir."""
        self.remove_pod()
        podman("secret", "rm", self.secret_name, check=False)
        self.stop_blob_store()
        if self.workdir.exists():
            shutil.rmtree(self.workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description="the local ai-app system (make demo/down)")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "build" / "demo")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8080)))
    parser.add_argument(
        "--azurite-port", type=int, default=int(os.environ.get("DEMO_AZURITE_PORT", 10000))
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("DEMO_METRICS_PORT", 9090))
    )
    args = parser.parse_args()
    stack = LocalStack(args.workdir, args.port, args.azurite_port, args.metrics_port)
    if args.command == "down":
        stack.down()
        print("demo removed: pod, secret, Azurite and build/demo")
        return
    figures = stack.up()
    row = " ".join(["0"] * 10 + ["12"] * 44 + ["0"] * 10)
    print(f"""
ai-app is running: model {MODEL_NAME} v1 (digest {figures["digest"]})
  pod ready {figures["pod_ready_seconds"]:.1f}s after creation \
(init container done {figures["kube_play_seconds"]:.1f}s in)

  URL:      {stack.url}
  model:    curl -s {stack.url}/
  predict:  curl -s {stack.url}/predict -H 'content-type: application/json' \\
              -d '{{"instances": [[{row.replace(" ", ",")}]]}}'
  metrics:  curl -s {stack.metrics_url}/metrics | grep aiapp_model_info
  stop:     make down
""")


if __name__ == "__main__":
    main()

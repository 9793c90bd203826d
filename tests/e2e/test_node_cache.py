"""Replicas on one node cache, as `make demo REPLICAS=3 CACHE=hostPath` runs them: three pods of
the chart started at once on one hostPath model volume, their init containers racing on its
content store, Blob behind a proxy that counts the bytes it sends (tests/support/fault_proxy.py):
each file of the model crosses the network once. Then a version that changes one file: the
deploy moves every replica to it, and only that file crosses the network.

The sample model downloads in a fraction of a second, less than the gap podman leaves between
starting the pods, so the proxy holds the model.onnx answer until every loader has read the
manifest, as a model of gigabytes would: the three loaders race for sure."""

import json
import shutil
import socket
import subprocess

import pytest

from local.__main__ import main as local_main
from local.net import free_port
from local.podman import why_podman_cannot_run
from local.rollout import deploy
from local.stack import MODEL_NAME, REPO_ROOT, LocalStack
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.image_model import sample_image_model
from tests.support.log_audit import audit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REASON = why_podman_cannot_run()
if REASON:
    pytestmark.append(pytest.mark.skip(reason=REASON))

REPLICAS = 3
CONTAINER = "models"  # the container `model_loader publish` writes to (MODEL_CONTAINER)
MANIFEST = "manifest.json"
BLOBS = f"/devstoreaccount1/{CONTAINER}/{MODEL_NAME}"  # a version's blobs: BLOBS/<version>/<file>


def free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports nothing listens on (replica i listens
    on the app port + i and the metrics port + i)."""
    while True:
        base = free_port()
        if all(bindable(base + i) for i in range(1, count)):
            return base


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def files_of(directory) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in directory.iterdir()}


def sent_for(proxy: FaultProxy, version: str) -> dict[str, int]:
    """Bytes the proxy sent for each of the version's blobs, its manifest apart."""
    sent = proxy.bytes_under(f"{BLOBS}/{version}/")
    sent.pop(MANIFEST, None)
    return sent


def loader_events(pod: LocalStack) -> dict[str, dict]:
    """The JSON log lines of the pod's init container (podman keeps it, see render()), by
    event; the last of each."""
    lines = [json.loads(line) for line in pod.logs("model-loader").splitlines() if line[:1] == "{"]
    return {line["event"]: line for line in lines}


LOST = "installed by another fetch first, verified"  # a loader whose rename came second


def every_loader_read_the_manifest(proxy: FaultProxy) -> bool:
    return proxy.answered.get(f"{BLOBS}/1/{MANIFEST}", 0) >= REPLICAS


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO_ROOT, check=True)
    workdir = tmp_path_factory.mktemp("node-cache") / "demo"
    azurite_port = free_port()
    hold = Fault("hold", times=1, stall_seconds=60, until=every_loader_read_the_manifest)
    with FaultProxy(azurite_port, hold, match="/1/model.onnx") as proxy:
        ports = free_ports(2 * REPLICAS)
        stack = LocalStack(
            workdir,
            app_port=ports,
            azurite_port=azurite_port,
            metrics_port=ports + REPLICAS,
            model_dir=sample_image_model(),
            release="cache",
            replicas=REPLICAS,
            node_cache=workdir / "node-cache",
            blob_endpoint_port=proxy.port,
        )
        try:
            stack.figures = stack.up()
            yield stack, proxy
            for pod in stack.pods:
                audit(f"{pod.pod_name} model-loader", pod.logs("model-loader"))
        finally:
            stack.down()


def test_replicas_started_at_once_fetch_each_file_once(system):
    stack, proxy = system
    model = files_of(stack.model_dir)
    logs = [loader_events(pod) for pod in stack.pods]
    served = [pod.served() for pod in stack.pods]

    assert all("fetch start" in events for events in logs)  # all three missed the cache
    sent = sent_for(proxy, "1")
    assert sent == model  # every file once, none twice
    (done,) = [events["fetch done"] for events in logs if "fetch done" in events]
    print(
        f"\n{REPLICAS} replicas on one node cache: Blob sent {sum(sent.values())} bytes of the "
        f"model's {sum(model.values())} (+ {proxy.sent_bytes[f'{BLOBS}/1/{MANIFEST}']} of "
        f"manifests); all ready {stack.figures['pod_ready_seconds']:.1f}s after creation; the "
        f"install that won fetched {done['bytes_fetched']}, reused {done['bytes_reused']}"
    )
    assert done["bytes_fetched"] + done["bytes_reused"] == sum(model.values())
    assert sum(LOST in events for events in logs) == REPLICAS - 1  # the others verified it
    assert [(answer["version"], answer["ready"]) for answer in served] == [("1", True)] * REPLICAS


def test_a_bump_that_changes_one_file_fetches_that_file_only(system, tmp_path, capsys):
    stack, proxy = system
    changed = tmp_path / MODEL_NAME
    shutil.copytree(stack.model_dir, changed)
    (changed / "labels.txt").write_text("270\n180\n90\n0\n")  # same size, other bytes
    digest = stack.publish("2", changed)

    served, _ = deploy(stack, MODEL_NAME, "2")

    assert served == digest
    assert sent_for(proxy, "2") == {"labels.txt": (changed / "labels.txt").stat().st_size}
    assert all("cache hit" in loader_events(pod) for pod in stack.pods)  # the candidate's
    assert local_main(["--workdir", str(stack.workdir), "status"]) == 0
    served_lines = capsys.readouterr().out.splitlines()[:REPLICAS]
    assert served_lines == [
        f"served:    {MODEL_NAME} 2 (digest {digest}) ready",
        *(f"  replica {i}: {MODEL_NAME} 2 (digest {digest}) ready" for i in range(1, REPLICAS)),
    ]

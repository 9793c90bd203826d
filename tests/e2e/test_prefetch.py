"""The chart's prefetch DaemonSet on this machine's one node, as a release manager uses it
(`make stage`, then `make deploy`): the app's pod serves version 1 from the node cache (a
hostPath); version 2 is staged (`model.prefetch.stage`), and the prefetcher fetches what the
node lacks of it and reports each version on its metrics port; the bump then finds the version
installed, Blob (behind the proxy that counts what it sends, tests/support/fault_proxy.py)
gets no request at all, and the prefetcher is replayed with version 2 pinned. podman 4.3 plays
no DaemonSet: its pod template is played as a one-replica Deployment's."""

import json
import shutil
import socket
import subprocess

import pytest

from local.__main__ import main as local_main
from local.history import History
from local.net import free_port
from local.podman import podman, why_podman_cannot_run
from local.stack import MODEL_NAME, REPO_ROOT, LocalStack
from tests.e2e.test_node_cache import files_of, loader_events, sent_for
from tests.loader.test_prefetch import scrape
from tests.support.fault_proxy import FaultProxy
from tests.support.image_model import sample_image_model
from tests.support.log_audit import audit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REASON = why_podman_cannot_run()
if REASON:
    pytestmark.append(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO_ROOT, check=True)
    workdir = tmp_path_factory.mktemp("prefetch") / "demo"
    azurite_port = free_port()
    with FaultProxy(azurite_port, None) as proxy:  # no fault: it counts
        stack = LocalStack(
            workdir,
            app_port=free_port(),
            azurite_port=azurite_port,
            metrics_port=free_port(),
            model_dir=sample_image_model(),
            release="prefetch",
            node_cache=workdir / "node-cache",
            blob_endpoint_port=proxy.port,
            prefetch_port=free_port(),
        )
        try:
            stack.figures = stack.up()
            yield stack, proxy
            audit("model-loader", stack.logs("model-loader"))
            audit("prefetch", prefetch_logs(stack))
        finally:
            stack.down()


def prefetch_logs(stack: LocalStack) -> str:
    result = podman("logs", f"{stack.prefetch_pod_name}-prefetch", check=False)
    return result.stdout + result.stderr


def test_a_staged_version_is_on_the_node_before_the_bump_and_the_bump_asks_blob_nothing(
    system, tmp_path, capsys
):
    stack, proxy = system
    workdir = ["--workdir", str(stack.workdir)]
    first_digest = stack.figures["digest"]
    changed = tmp_path / MODEL_NAME
    shutil.copytree(stack.model_dir, changed)
    (changed / "labels.txt").write_text("270\n180\n90\n0\n")  # same size, other bytes
    digest = stack.publish("2", changed)
    History(stack.workdir).record(MODEL_NAME, "1", first_digest, "demo")  # as `make demo` does

    assert local_main([*workdir, "stage", "--version", "2"]) == 0  # make stage VERSION=2
    staged_line = capsys.readouterr().out.splitlines()[0]
    metrics = scrape(stack.prefetch_port)  # `stage` waited for the port: both are installed

    node, info = socket.gethostname(), metrics["aiapp_prefetch_info"]
    assert {labels["version"]: labels for labels, _ in info} == {
        "1": {
            "name": MODEL_NAME,
            "version": "1",
            "digest": first_digest,
            "node": node,
            "role": "pinned",
        },
        "2": {"name": MODEL_NAME, "version": "2", "digest": digest, "node": node, "role": "staged"},
    }
    fetched, reused = (
        {labels["version"]: value for labels, value in metrics[f"aiapp_prefetch_{kind}_bytes"]}
        for kind in ("fetched", "reused")
    )
    model_bytes = sum(files_of(stack.model_dir).values())
    labels_bytes = (changed / "labels.txt").stat().st_size
    assert fetched == {"1": 0, "2": labels_bytes}  # 1: installed by the app's pod already
    assert reused == {"1": 0, "2": model_bytes - labels_bytes}  # 2: the rest from the store
    assert sent_for(proxy, "2") == {"labels.txt": labels_bytes}
    assert staged_line == (
        f"staged {MODEL_NAME} 2 (digest {digest}) on the node cache beside 1: "
        f"{labels_bytes} bytes fetched, {model_bytes - labels_bytes} reused"
    )
    ready = [json.loads(line) for line in prefetch_logs(stack).splitlines() if line[:1] == "{"]
    ready = {line["version"]: line for line in ready if line["event"] == "prefetch ready"}
    assert ready.keys() == {"1", "2"} and ready["2"]["bytes_fetched"] == labels_bytes

    requests_before = proxy.forwarded
    assert local_main([*workdir, "deploy", "--name", MODEL_NAME, "--version", "2"]) == 0

    assert stack.served()["version"] == "2" and stack.served()["digest"] == digest
    assert proxy.forwarded == requests_before  # the bump's loaders never reached Blob
    hit = loader_events(stack)["cache hit"]
    assert (hit["version"], hit["digest"], hit["trusted"]) == ("2", digest, "stat")
    rolled = scrape(stack.prefetch_port)["aiapp_prefetch_info"]  # `deploy` rolled it too
    assert [(labels["version"], labels["role"]) for labels, _ in rolled] == [("2", "pinned")]
    print(
        f"\nprefetch: version 2 staged on the node, Blob sent {labels_bytes} bytes (its one "
        f"changed file of {model_bytes}); the bump to it sent {proxy.forwarded - requests_before}"
        " requests to Blob"
    )

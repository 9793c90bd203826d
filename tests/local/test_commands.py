"""The local system's commands without a pod: the history `rollback` reads, and the one-line
errors of `python -m local` (the pod itself: tests/e2e/test_local_loop.py)."""

import dataclasses
import socket
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


def test_staging_without_the_node_cache_says_what_it_needs(tmp_path):
    LocalStack(tmp_path, 1, 2, 3, tmp_path / "model", release="t").save()  # emptyDir pods
    History(tmp_path).record("digits", "1", "a" * 64, "demo")

    result = run_local("--workdir", str(tmp_path), "stage", "--version", "2")

    assert result.returncode == 1
    assert result.stderr == "local: error: staging needs the node cache: make demo CACHE=hostPath\n"


def test_staging_with_nothing_served_says_so(tmp_path):
    LocalStack(tmp_path, 1, 2, 3, tmp_path / "model", node_cache=tmp_path / "nc").save()

    result = run_local("--workdir", str(tmp_path), "stage", "--version", "2")

    assert result.returncode == 1
    assert result.stderr == (
        "local: error: nothing is served to stage beside: run `make demo` first\n"
    )


def test_the_prefetcher_is_the_charts_daemonset_pod_with_its_own_volumes(tmp_path):
    """Played as a Deployment (podman 4.3 plays no DaemonSet), its emptyDir apart from the
    app pod's, this host as its node, its metrics on loopback."""
    stack = LocalStack(tmp_path, 8080, 10000, 9090, tmp_path / "model", node_cache=tmp_path / "nc")
    stack.prefetch_port = 9400

    prefetcher = stack.render_prefetch("1", "a" * 64, [("2", "b" * 64)])
    spec = prefetcher["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    (app_pod,) = stack.render("1", "a" * 64)
    app_volumes = {v["name"] for v in app_pod["spec"]["template"]["spec"]["volumes"]}

    assert (prefetcher["kind"], prefetcher["metadata"]["name"]) == (
        "Deployment",
        "demo-ai-app-prefetch",
    )
    assert container["args"] == ["prefetch"] and spec["restartPolicy"] == "Never"
    assert env["NODE_NAME"] == socket.gethostname()
    assert env["PREFETCH_METRICS_PORT"] == "9400" and env["PREFETCH_METRICS_ADDRESS"] == "127.0.0.1"
    assert env["PREFETCH_STAGE"] == "2@" + "b" * 64
    assert {"name": "model", "hostPath": {"path": str(tmp_path / "nc"), "type": "Directory"}} in (
        spec["volumes"]
    )
    assert {v["name"] for v in spec["volumes"] if "emptyDir" in v} == {"demo-ai-app-prefetch-tmp"}
    assert "demo-ai-app-prefetch-tmp" not in app_volumes


def test_demo_refuses_a_bad_replica_count_or_cache_in_one_line(tmp_path):
    for option, line in (
        (["--replicas", "0"], "argument --replicas: '0' is not a number of replicas (1 or more)"),
        (["--cache", "nfs"], "argument --cache: invalid choice: 'nfs' (choose from"),
    ):
        result = run_local("--workdir", str(tmp_path), "demo", *option)

        assert result.returncode == 1
        assert result.stderr.startswith(f"local: error: {line}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "stack.json").exists()  # refused before anything started


def test_each_replica_is_its_own_release_on_its_own_ports_over_one_node_cache(tmp_path):
    stack = LocalStack(tmp_path, 8080, 10000, 9090, tmp_path / "model", release="demo", replicas=3)
    shared = dataclasses.replace(stack, node_cache=tmp_path / "node-cache")

    pods = [(pod.release, pod.pod_name, pod.url, pod.metrics_url) for pod in stack.pods]
    (deployment,) = shared.replica(2).render("1", "a" * 64)
    spec = deployment["spec"]["template"]["spec"]
    app = spec["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in app["env"]}
    (model, tmp, _) = spec["volumes"]

    assert pods == [
        ("demo", "demo-ai-app-pod-0", "http://127.0.0.1:8080", "http://127.0.0.1:9090"),
        ("demo-1", "demo-1-ai-app-pod-0", "http://127.0.0.1:8081", "http://127.0.0.1:9091"),
        ("demo-2", "demo-2-ai-app-pod-0", "http://127.0.0.1:8082", "http://127.0.0.1:9092"),
    ]
    assert stack.replica(0) is stack and stack.replica(2).workdir == tmp_path / "replicas" / "2"
    assert deployment["metadata"]["name"] == "demo-2-ai-app"
    assert tmp["name"] == "demo-2-ai-app-tmp"  # each pod's own emptyDir (see for_podman())
    assert model == {
        "name": "model",
        "hostPath": {"path": str(tmp_path / "node-cache"), "type": "Directory"},
    }
    assert {"8082", "9092"} <= set(env.values())
    (mount,) = [m for m in app["volumeMounts"] if m["name"] == "model"]
    assert mount["readOnly"] is True
    (default,) = stack.render("1", "a" * 64)
    volumes = default["spec"]["template"]["spec"]["volumes"]
    assert {"name": "demo-ai-app-model", "emptyDir": {"sizeLimit": "2Gi"}} in volumes

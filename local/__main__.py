"""The local system's commands, one per make target:

    python -m local demo     [--model-dir DIR] [--port P] [--metrics-port P] [--azurite-port P]
                             [--replicas N] [--cache emptyDir|hostPath]
    python -m local publish  --dir DIR --name N --version V
    python -m local stage    --version V [--digest D]
    python -m local deploy   --name N --version V [--digest D]
    python -m local rollback
    python -m local status
    python -m local down

Every command but demo works on the system a `demo` left in --workdir (build/demo). A failure
prints one line, `local: error: ...`, and exits 1.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from local.history import History
from local.net import free_port
from local.rollout import deploy
from local.sample_image_model import sample_page
from local.stack import MODEL_NAME, REPO_ROOT, LocalStack, StackError, last_error_line

PROG = "local"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise StackError(message)


def replica_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of replicas (1 or more)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = _Parser(prog=PROG, description="the local ai-app system (make demo, deploy, ...)")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "build" / "demo")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub = commands.add_parser("demo", help="Azurite, the sample model as version 1, the pod")
    sub.add_argument("--model-dir", type=Path, default=REPO_ROOT / "build" / "sample-model")
    sub.add_argument("--release", default=env("DEMO_RELEASE", "demo"))
    sub.add_argument("--port", type=int, default=int(env("DEMO_PORT", 8080)))
    sub.add_argument("--metrics-port", type=int, default=int(env("DEMO_METRICS_PORT", 9090)))
    sub.add_argument("--azurite-port", type=int, default=int(env("DEMO_AZURITE_PORT", 10000)))
    sub.add_argument(
        "--replicas", type=replica_count, default=1, help="pods, on ports PORT+i, METRICS_PORT+i"
    )
    sub.add_argument(
        "--cache",
        choices=("emptyDir", "hostPath"),
        default="emptyDir",
        help="each pod's own model volume, or one node cache (WORKDIR/node-cache) for all",
    )

    sub = commands.add_parser("publish", help="publish a version directory to the local Azurite")
    sub.add_argument("--dir", type=Path, required=True)
    sub.add_argument("--name", required=True)
    sub.add_argument("--version", required=True)

    sub = commands.add_parser(
        "stage", help="node cache: the prefetcher installs this version ahead of a deploy"
    )
    sub.add_argument("--version", required=True)
    sub.add_argument("--digest", default="", help="pin (default: the published digest)")

    sub = commands.add_parser("deploy", help="pre-flight, then serve this version")
    sub.add_argument("--name", required=True)
    sub.add_argument("--version", required=True)
    sub.add_argument("--digest", default="", help="pin (default: the published digest)")

    commands.add_parser("rollback", help="serve the revision served before the current one")
    commands.add_parser("status", help="what is served, what is published, the history")
    commands.add_parser("down", help="remove the pod, the secret, Azurite and the workdir")
    return parser


def demo(args: argparse.Namespace) -> None:
    with contextlib.suppress(StackError):  # a demo already up, maybe under another release
        LocalStack.load(args.workdir).down()
    stack = LocalStack(
        args.workdir,
        args.port,
        args.azurite_port,
        args.metrics_port,
        args.model_dir,
        args.release,
        replicas=args.replicas,
        node_cache=args.workdir.resolve() / "node-cache" if args.cache == "hostPath" else None,
    )
    figures = stack.up()
    History(stack.workdir).record(MODEL_NAME, "1", figures["digest"], "demo")
    page = stack.workdir / "page.jpg"
    page.write_bytes(sample_page(90))
    cache = f", node cache {os.path.relpath(stack.node_cache)}" if stack.node_cache else ""
    pods = f"{stack.replicas} pods" if stack.replicas > 1 else "pod"
    replicas = "".join(
        f"\n  replica {i}: {pod.url}/  metrics: {pod.metrics_url}/metrics  ({pod.pod_name})"
        for i, pod in enumerate(stack.pods)
        if stack.replicas > 1
    )
    print(f"""
ai-app is running: model {MODEL_NAME} v1 (digest {figures["digest"]}){cache}
  {pods} ready {figures["pod_ready_seconds"]:.1f}s after creation \
(init container done {figures["kube_play_seconds"]:.1f}s in){replicas}

  page:     {stack.url}/  (open it in a browser, drop an image)
  predict:  curl -s --data-binary @{os.path.relpath(page)} \\
              -H 'Content-Type: image/jpeg' {stack.url}/predict
            (a page of text turned 90 degrees clockwise: the answer's label is "90")
  model:    curl -s {stack.url}/
  metrics:  curl -s {stack.metrics_url}/metrics | grep aiapp_model_info
  your own: make publish / deploy / rollback / status (README "Running locally")
  stop:     make down
""")


def publish(args: argparse.Namespace) -> None:
    stack = LocalStack.load(args.workdir)
    stack.ensure_blob_store()
    print(stack.publish(args.version, args.dir, args.name))


def serve(stack: LocalStack, name: str, version: str, digest: str, description: str) -> None:
    history = History(stack.workdir)
    try:
        digest, swap_seconds = deploy(stack, name, version, digest)
    except StackError as exc:
        served = stack.served()  # what the pod answers now, not what we hope it does
        now = f"{served['name']} {served['version']} still served" if served else "nothing served"
        raise StackError(f"{name} {version} not deployed, {now}: {exc}") from None
    revision = history.record(name, version, digest, description)
    print(
        f"revision {revision.revision}: serving {name} {version} (digest {digest}) at {stack.url}"
        f"\n  the swap left {stack.url} without a ready pod for {swap_seconds:.1f}s"
    )
    if stack.prefetching:  # the bump rolls the DaemonSet too: it now keeps this version
        prefetch(stack, name, version, digest, [])


def prefetch(
    stack: LocalStack, name: str, version: str, digest: str, stage: list[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """The prefetcher (re)played, keeping `version` and `stage` on the node cache; once
    ready, each version's fetched and reused bytes from its metrics."""
    played = stack.play_prefetch(version, digest, stage, name)
    if played.returncode != 0:
        raise StackError(f"the prefetcher: {last_error_line(played.stderr)}")
    try:
        metrics = stack.wait_prefetched()
    except TimeoutError as exc:
        raise StackError(str(exc)) from None
    moved: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name in ("aiapp_prefetch_fetched_bytes", "aiapp_prefetch_reused_bytes"):
                kind = sample.name.split("_")[2]
                moved.setdefault(sample.labels["version"], {})[kind] = sample.value
    return moved


def stage(args: argparse.Namespace) -> None:
    """What a release manager does before a bump on AKS (README "Pre-staging on every
    node"): the served version stays pinned, this one is installed beside it."""
    stack = LocalStack.load(args.workdir)
    if stack.node_cache is None:
        raise StackError("staging needs the node cache: make demo CACHE=hostPath")
    served = History(stack.workdir).current()
    if served is None:
        raise StackError("nothing is served to stage beside: run `make demo` first")
    stack.ensure_blob_store()
    digest = stack.preflight(args.version, args.digest, served.name)
    if not stack.prefetch_port:
        stack.prefetch_port = free_port()
        stack.save()
    moved = prefetch(stack, served.name, served.version, served.digest, [(args.version, digest)])
    staged = moved[args.version]
    print(
        f"staged {served.name} {args.version} (digest {digest}) on the node cache beside "
        f"{served.version}: {staged['fetched']:.0f} bytes fetched, {staged['reused']:.0f} reused"
        f"\n  prefetcher: http://127.0.0.1:{stack.prefetch_port}/metrics"
        f"\n  next:       make deploy NAME={served.name} VERSION={args.version} (a cache hit)"
    )


def deploy_command(args: argparse.Namespace) -> None:
    serve(LocalStack.load(args.workdir), args.name, args.version, args.digest, "deploy")


def rollback(args: argparse.Namespace) -> None:
    stack = LocalStack.load(args.workdir)
    history = History(stack.workdir)
    target = history.previous()
    if target is None:
        raise StackError("nothing to roll back to: only one revision")
    description = f"rollback to {target.revision}"
    serve(stack, target.name, target.version, target.digest, description)


def serving(pod: LocalStack) -> str:
    served = pod.served()
    if not served:
        return f"nothing answers at {pod.url}"
    state = "ready" if served["ready"] else "NOT ready"
    return f"{served['name']} {served['version']} (digest {served['digest']}) {state}"


def status(args: argparse.Namespace) -> None:
    stack = LocalStack.load(args.workdir)
    served = stack.served()
    print(f"served:    {serving(stack)}")
    for index, pod in enumerate(stack.pods[1:], 1):
        print(f"  replica {index}: {serving(pod)}")
    revisions = History(stack.workdir).revisions()
    stack.ensure_blob_store()
    for name in dict.fromkeys([served.get("name") or MODEL_NAME, *(r.name for r in revisions)]):
        listed = stack.loader("list", "--name", name)
        if listed.returncode != 0:
            raise StackError(f"model_loader list: {listed.stderr.strip().splitlines()[-1]}")
        print(f"published: {name} (version, digest, created, bytes)")
        for line in listed.stdout.splitlines():
            print(f"  {line}")
    print("history:")
    for r in revisions:
        print(
            f"  {r.revision}  {r.deployed}  {r.name} {r.version}  {r.digest[:12]}  {r.description}"
        )


def down(args: argparse.Namespace) -> None:
    try:
        stack = LocalStack.load(args.workdir)
    except StackError:  # nothing recorded: the defaults a `make demo` would have used
        release = os.environ.get("DEMO_RELEASE", "demo")
        stack = LocalStack(args.workdir, 8080, 10000, 9090, Path(), release)
    stack.down()
    pods = "pods, secrets" if stack.replicas > 1 else "pod, secret"
    print(f"local system removed: {pods}, Azurite and {os.path.relpath(args.workdir)}")


COMMANDS = {
    "demo": demo,
    "publish": publish,
    "stage": stage,
    "deploy": deploy_command,
    "rollback": rollback,
    "status": status,
    "down": down,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except StackError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

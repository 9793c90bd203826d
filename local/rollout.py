"""Moving the local pod to another model version the way `helm upgrade` moves the AKS pods.

On AKS the Deployment's rolling update starts the new pod beside the old one and retires the
old one only once the new one is ready, so a version whose init container fails never takes
the service down. Locally the pod listens on the host's port, where two pods can't sit side by
side, so a deploy checks before it replaces:

1. pre-flight (`make preflight` on the chart rendered with the new values): the version and
   its digest exist in Blob; without a pinned digest, the published one is pinned;
2. a candidate pod, the same rendering under another release name on free ports: its init
   container fetches and verifies the version, its app must become ready;
3. only then is the serving pod replaced by the new version on the service's port; with
   several replicas, one after the other, each once the one before is ready (as `maxSurge: 1`
   without the surge). With a node cache the candidate has installed the version there already,
   so the replicas fetch nothing.

A failure in 1 or 2 leaves the serving pod as it was and raises StackError with the reason.
The local swap has a few seconds without service (the old pod goes, the new one fetches and
starts), where AKS has none.
"""

import dataclasses
import shutil
import time

from local.net import free_port
from local.podman import podman
from local.stack import LocalStack, StackError, last_error_line

CANDIDATE_READY_SECONDS = 120


def candidate_of(stack: LocalStack) -> LocalStack:
    return dataclasses.replace(
        stack,
        workdir=stack.workdir / "candidate",
        release=f"{stack.release}-candidate",
        app_port=free_port(),
        metrics_port=free_port(),
    )


def try_candidate(stack: LocalStack, name: str, version: str, digest: str) -> None:
    """Run the new version beside the serving pod; StackError if it doesn't become ready."""
    candidate = candidate_of(stack)
    candidate.workdir.mkdir(parents=True, exist_ok=True)
    try:
        candidate.create_secret()
        played = candidate.play(version, digest, name)
        if played.returncode != 0:
            reason = last_error_line(candidate.logs("model-loader")) or played.stderr.strip()
            raise StackError(f"init container: {reason}")
        try:
            candidate.wait_ready(CANDIDATE_READY_SECONDS)
        except TimeoutError:
            reason = last_error_line(candidate.logs("app"))
            raise StackError(f"not ready after {CANDIDATE_READY_SECONDS}s: {reason}") from None
    finally:
        candidate.remove_pod()
        podman("secret", "rm", candidate.secret_name, check=False)
        shutil.rmtree(candidate.workdir, ignore_errors=True)


def deploy(stack: LocalStack, name: str, version: str, digest: str = "") -> tuple[str, float]:
    """Serve this version (pre-flight, candidate, then the swap); returns the digest served and
    the longest a replica's port was left without a ready pod."""
    stack.ensure_blob_store()
    digest = stack.preflight(version, digest, name)
    try_candidate(stack, name, version, digest)
    return digest, max(replace(pod, name, version, digest) for pod in stack.pods)


def replace(pod: LocalStack, name: str, version: str, digest: str) -> float:
    """One replica's pod replaced by the version; the seconds until it was ready again."""
    started = time.monotonic()
    played = pod.play(version, digest, name)
    if played.returncode != 0:
        raise StackError(f"replacing the pod: {last_error_line(played.stderr)}")
    try:
        pod.wait_ready()
    except TimeoutError:
        raise StackError(f"replaced pod not ready: {last_error_line(pod.logs('app'))}") from None
    return time.monotonic() - started

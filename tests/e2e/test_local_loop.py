"""The README's local walkthrough, through the make targets it documents: `make demo`, then
publish your own model, deploy it, a deploy that fails pre-flight and one whose init container
fails (both leave the serving pod as it was), roll back. The tests run in file order, each on
the state the previous one left, on free ports and under a release of their own, so a running
`make demo` is never touched."""

import shutil
import subprocess

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from local.azurite import Azurite
from local.net import free_port
from local.podman import podman, why_podman_cannot_run
from local.stack import MODEL_NAME, REPO_ROOT
from tests.support.image_model import rotated_page, sample_image_model
from tests.support.log_audit import audit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REASON = why_podman_cannot_run()
if REASON:
    pytestmark.append(pytest.mark.skip(reason=REASON))

RELEASE = "loop"
WRONG_DIGEST = "0" * 64


class Loop:
    """`make TARGET` against the test's own local system (DEMO_DIR, DEMO_RELEASE, ports)."""

    def __init__(self, workdir) -> None:
        self.app_port, self.azurite_port = free_port(), free_port()
        self.settings = [
            f"DEMO_DIR={workdir}",
            f"DEMO_RELEASE={RELEASE}",
            f"DEMO_PORT={self.app_port}",
            f"DEMO_METRICS_PORT={free_port()}",
            f"DEMO_AZURITE_PORT={self.azurite_port}",
        ]
        self.digests: dict[str, str] = {}

    def make(self, target: str, *variables: str, options=()) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["make", "-s", "--no-print-directory", *options, target, *self.settings, *variables],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        audit(f"make {target}", result.stdout + result.stderr)
        return result

    def ok(self, target: str, *variables: str, options=()) -> str:
        result = self.make(target, *variables, options=options)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def predict(self, degrees: int) -> requests.Response:
        return requests.post(
            f"http://127.0.0.1:{self.app_port}/predict",
            data=rotated_page(degrees),
            headers={"Content-Type": "image/jpeg"},
            timeout=10,
        )

    def app_started_at(self) -> str:
        container = f"{RELEASE}-ai-app-pod-0-app"
        return podman("inspect", container, "--format", "{{.State.StartedAt}}").stdout.strip()


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line the local CLI prints on failure (make adds its own `make: ***` line)."""
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("local: error:")]
    return line


def served_line(loop: Loop) -> str:
    return loop.ok("status").splitlines()[0]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO_ROOT, check=True)
    system = Loop(tmp_path_factory.mktemp("loop") / "demo")
    try:
        # setup, images and sample-model are done already (make test ran setup; images above);
        # the sample model comes from the tests' cache.
        options = ("-o", "setup", "-o", "images", "-o", "sample-model")
        system.ok("demo", f"DEMO_MODEL={sample_image_model()}", options=options)
        yield system
    finally:
        system.make("down")


@pytest.fixture(scope="module")
def my_model(tmp_path_factory):
    """The sample model with its labels reversed: a page turned 90 degrees reads "180"."""
    directory = tmp_path_factory.mktemp("my-model") / "orientation"
    shutil.copytree(sample_image_model(), directory)
    (directory / "labels.txt").write_text("270\n180\n90\n0\n")
    return directory


def test_demo_serves_the_sample_model_as_revision_1(loop):
    answer = loop.predict(90)

    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == "90"
    assert answer.headers["X-Model-Version"] == "1"
    loop.digests["1"] = answer.headers["X-Model-Digest"]
    assert served_line(loop) == f"served:    {MODEL_NAME} 1 (digest {loop.digests['1']}) ready"


def test_publish_prints_the_digest_and_status_lists_the_version(loop, my_model):
    out = loop.ok("publish", f"DIR={my_model}", f"NAME={MODEL_NAME}", "VERSION=2")
    again = loop.make("publish", f"DIR={my_model}", f"NAME={MODEL_NAME}", "VERSION=2")
    status = loop.ok("status")

    (digest,) = out.split()
    assert len(digest) == 64
    loop.digests["2"] = digest
    assert again.returncode != 0 and "already published" in error_line(again)
    assert f"  2\t{digest}\t" in status
    assert f"  1\t{loop.digests['1']}\t" in status
    assert status.splitlines()[0].startswith(f"served:    {MODEL_NAME} 1 ")  # not deployed yet


def test_deploy_moves_the_pod_to_the_new_version(loop):
    out = loop.ok("deploy", f"NAME={MODEL_NAME}", "VERSION=2")
    answer = loop.predict(90)

    assert out.startswith(f"revision 2: serving {MODEL_NAME} 2 (digest {loop.digests['2']})")
    print(f"\nmake deploy: {out.splitlines()[1].strip()}")  # the swap's gap, a figure
    assert served_line(loop) == f"served:    {MODEL_NAME} 2 (digest {loop.digests['2']}) ready"
    assert answer.headers["X-Model-Version"] == "2"
    assert answer.json()["predictions"][0]["label"] == "180"  # the reversed labels


def test_a_version_failing_pre_flight_leaves_the_pod_serving(loop):
    started = loop.app_started_at()

    failed = loop.make("deploy", f"NAME={MODEL_NAME}", "VERSION=2", f"DIGEST={WRONG_DIGEST}")

    assert failed.returncode != 0
    line = error_line(failed)
    assert f"{MODEL_NAME} 2 still served: pre-flight:" in line
    assert f"differs from the pinned {WRONG_DIGEST}" in line
    assert loop.app_started_at() == started  # the serving pod was never touched
    assert served_line(loop) == f"served:    {MODEL_NAME} 2 (digest {loop.digests['2']}) ready"


def test_a_version_whose_init_container_fails_leaves_the_pod_serving(loop, my_model):
    loop.ok("publish", f"DIR={my_model}", f"NAME={MODEL_NAME}", "VERSION=3")
    connection = Azurite(port=loop.azurite_port).connection_string()
    blob = BlobServiceClient.from_connection_string(connection).get_blob_client(
        "models", f"{MODEL_NAME}/3/labels.txt"
    )
    blob.upload_blob(b"0\n90\n180\n270\n", overwrite=True)  # same size, other bytes
    started = loop.app_started_at()

    failed = loop.make("deploy", f"NAME={MODEL_NAME}", "VERSION=3")

    assert failed.returncode != 0
    line = error_line(failed)
    assert f"not deployed, {MODEL_NAME} 2 still served: init container:" in line
    assert f"{MODEL_NAME}/3/labels.txt: sha256 differs" in line
    assert loop.app_started_at() == started
    assert served_line(loop) == f"served:    {MODEL_NAME} 2 (digest {loop.digests['2']}) ready"
    candidate = podman("pod", "exists", f"{RELEASE}-candidate-ai-app-pod-0", check=False)
    assert candidate.returncode != 0  # the candidate pod is gone


def test_rollback_returns_to_the_version_served_before(loop):
    out = loop.ok("rollback")
    answer = loop.predict(90)
    history = loop.ok("status").split("history:\n")[1].splitlines()

    assert out.startswith(f"revision 3: serving {MODEL_NAME} 1 (digest {loop.digests['1']})")
    assert answer.headers["X-Model-Version"] == "1"
    assert answer.json()["predictions"][0]["label"] == "90"
    assert [line.split()[2:5] for line in history] == [
        [MODEL_NAME, "1", loop.digests["1"][:12]],
        [MODEL_NAME, "2", loop.digests["2"][:12]],
        [MODEL_NAME, "1", loop.digests["1"][:12]],
    ]
    assert history[-1].endswith("rollback to 1")

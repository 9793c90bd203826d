"""Each gunicorn worker loads its own copy of the model: the master refuses to start, with one
line and before any worker forks, when the model can't fit the container's memory limit (read
from its cgroup); the estimate it uses covers what workers really take."""

import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper

from app.memory import MemoryTooSmall, check_memory, memory_limit, model_bytes, needed_bytes
from local.net import free_port
from model_loader.manifest import FileEntry, Manifest, sha256_of_file
from tests.support.gunicorn_server import GunicornServer, run_to_exit

MIB = 2**20


def cgroup(tmp_path: Path, v2: str | None = None, v1: str | None = None) -> Path:
    """A fake /sys/fs/cgroup with a cgroup v2 memory.max and/or a v1 memory.limit_in_bytes."""
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    if v2 is not None:
        (root / "memory.max").write_text(v2 + "\n")
    if v1 is not None:
        (root / "memory" / "memory.limit_in_bytes").write_text(v1 + "\n")
    return root


def server_env(sample: dict, root: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        **sample["env"],
        "APP_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "CGROUP_ROOT": str(root),
        **env,
    }


@pytest.mark.slow
def test_a_model_that_cannot_fit_the_memory_limit_stops_the_master_with_one_line(sample, tmp_path):
    root = cgroup(tmp_path, v2=str(100 * MIB))

    exit_code, output = run_to_exit(server_env(sample, root, tmp_path), tmp_path)

    assert exit_code == 2, output[-2000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1, output[-2000:]  # before gunicorn starts: no worker, no traceback
    assert re.fullmatch(
        r"ai-app-server: error: model digits/1 needs about \d+ MiB with 2 workers "
        r"\(.+\), over the container's memory limit of 100 MiB \(.+/memory\.max\); "
        r"raise the limit \(the chart's app\.resources\.limits\.memory\) "
        r"or lower WEB_CONCURRENCY \(app\.workers\)",
        lines[0],
    ), lines[0]


@pytest.mark.slow
def test_a_generous_limit_starts_and_serves(sample, tmp_path):
    root = cgroup(tmp_path, v2=str(4096 * MIB))

    with GunicornServer({**sample["env"], "CGROUP_ROOT": str(root)}) as server:
        ready = requests.get(server.url + "/v2/health/ready", timeout=10)

    assert ready.status_code == 200


@pytest.mark.slow
def test_a_model_not_installed_yet_is_not_checked_and_the_app_stays_up_not_ready(sample, tmp_path):
    root = cgroup(tmp_path, v2=str(1 * MIB))
    env = {**sample["env"], "MODEL_VERSION": "2", "CGROUP_ROOT": str(root)}

    with GunicornServer(env) as server:
        ready = requests.get(server.url + "/v2/health/ready", timeout=10)

    assert ready.status_code == 503


@pytest.mark.parametrize(
    ("v2", "v1", "limit"),
    [
        (str(512 * MIB), None, 512 * MIB),
        ("max", None, None),  # cgroup v2: no limit
        (None, str(256 * MIB), 256 * MIB),
        (None, "9223372036854771712", None),  # cgroup v1: no limit (the largest page count)
        (None, None, None),  # no cgroup files: nothing to check against
        ("512M", None, None),  # unreadable: not guessed at
    ],
    ids=["v2", "v2-max", "v1", "v1-unlimited", "none", "garbage"],
)
def test_the_limit_is_read_from_cgroup_v2_or_v1(tmp_path, v2, v1, limit):
    assert memory_limit(cgroup(tmp_path, v2=v2, v1=v1)) == limit


def test_the_model_size_is_the_sum_of_the_files_its_manifest_lists(sample, tmp_path):
    assert model_bytes(sample["directory"]) == (sample["directory"] / "model.onnx").stat().st_size
    assert model_bytes(tmp_path / "not-installed") is None
    (tmp_path / "manifest.json").write_text('{"files": [{"size": "12"}]}')
    assert model_bytes(tmp_path) is None  # malformed: the workers will say why


def test_the_estimate_grows_with_workers_and_model_size():
    assert needed_bytes(0, 1) < needed_bytes(0, 2) < needed_bytes(100 * MIB, 2)
    assert needed_bytes(100 * MIB, 2) - needed_bytes(0, 2) == 2 * 2 * 100 * MIB


def test_a_v1_limit_refuses_like_a_v2_one(sample, tmp_path):
    from app.config import Settings

    settings = Settings.from_env(
        server_env(sample, cgroup(tmp_path, v1=str(64 * MIB)), tmp_path), cpus=2
    )

    with pytest.raises(MemoryTooSmall, match=r"memory limit of 64 MiB \(.+memory\.limit_in_bytes"):
        check_memory(settings)


def matmul_model(path: Path, hidden: int) -> None:
    """An ONNX model with three MatMul layers of random weights, 64 -> hidden -> hidden -> 10
    (4 x (64 + hidden + 10) x hidden bytes of initializers), written to `path`."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.standard_normal((64, hidden), dtype=np.float32),
        "w2": rng.standard_normal((hidden, hidden), dtype=np.float32),
        "w3": rng.standard_normal((hidden, 10), dtype=np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["pixels", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("MatMul", ["r2", "w3"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 10])],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())


def install(root: Path, name: str, hidden: int) -> dict[str, str]:
    """The generated model installed as the loader lays it out; the app's env for it."""
    directory = root / name / "1"
    directory.mkdir(parents=True)
    matmul_model(directory / "model.onnx", hidden)
    entry = FileEntry(
        "model.onnx",
        (directory / "model.onnx").stat().st_size,
        sha256_of_file(directory / "model.onnx"),
    )
    manifest = Manifest(name, "1", "onnx", "2026-11-24T00:00:00Z", "tests", (entry,))
    (directory / "manifest.json").write_bytes(manifest.to_bytes())
    return {"MODEL_ROOT": str(root), "MODEL_NAME": name, "MODEL_VERSION": "1"}


def peak_rss(pid: int) -> int:
    """The process's high-water resident set (VmHWM): its peak, model loading included."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE).group(1)) * 1024


def wait_for_every_worker_to_load(server: GunicornServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.logs().count("model loaded: ") < server.workers:
        assert time.monotonic() < deadline, server.logs()[-2000:]
        assert server.process.poll() is None, server.logs()[-2000:]
        time.sleep(0.1)


@pytest.mark.slow
def test_the_estimate_covers_the_measured_peak_of_a_larger_model(tmp_path):
    """About 37 MiB of weights: the master's and both workers' peak resident memory, summed
    (an upper bound: shared pages count once per process), stays under the estimate, and
    the estimate is not a blanket margin either."""
    env = install(tmp_path / "models", "matmul", hidden=3072)
    size = model_bytes(tmp_path / "models" / "matmul" / "1")
    body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [64, 64]}]}
    body["inputs"][0]["data"] = [0.5] * 64 * 64

    with GunicornServer(env, workers=2, port=free_port()) as server:
        wait_for_every_worker_to_load(server)
        with requests.Session() as session:
            for _ in range(8):
                response = session.post(server.url + "/v2/models/matmul/infer", json=body)
                assert response.status_code == 200, response.text
        measured = sum(map(peak_rss, [server.process.pid, *server.worker_pids()]))

    assert size > 36 * MIB
    assert measured <= needed_bytes(size, 2) <= 1.5 * measured, (measured / MIB, size / MIB)

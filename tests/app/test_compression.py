"""Content codings: gzip and deflate request bodies are decompressed (the size limit holds
for the decompressed body too), other codings are a 415, and a large answer is gzipped for a
client that accepts it. Real clients: tritonclient's compression options, requests, and
http.client for the exact bytes and headers."""

import gzip
import http.client
import json
import zlib

import numpy as np
import onnxruntime
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.app.node_json import node_parse_errors

pytestmark = pytest.mark.slow

LIMIT = 1024 * 1024  # MAX_REQUEST_BYTES, the server's default


def infer_json(rows: np.ndarray) -> bytes:
    tensor = {
        "name": "pixels",
        "datatype": "FP32",
        "shape": list(rows.shape),
        "data": rows.tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def post(port: int, path: str, body: bytes, headers: dict[str, str]):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def expected(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = sample["x_test"][:8]
    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    labels, probabilities = session.run(["label", "probabilities"], {"pixels": rows})
    return rows, labels, probabilities


@pytest.mark.parametrize("request_coding", ["gzip", "deflate"])
@pytest.mark.parametrize("response_coding", [None, "gzip", "deflate"])
def test_tritonclient_compressed_requests_and_responses_infer_like_onnxruntime(
    gunicorn, expected, request_coding, response_coding
):
    rows, labels, probabilities = expected
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")
    ]

    result = client.infer(
        "digits",
        [tensor],
        outputs=outputs,
        request_compression_algorithm=request_coding,
        response_compression_algorithm=response_coding,
    )

    assert result.as_numpy("label").tolist() == labels.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("GZIP", gzip.compress),
        ("gzip, deflate", lambda body: zlib.compress(gzip.compress(body))),
        ("identity", lambda body: body),
    ],
)
@pytest.mark.parametrize("path", ["/predict", "/v1/models/digits:predict"])
def test_plain_clients_send_compressed_bodies(gunicorn, expected, coding, compress, path):
    rows, labels, _ = expected
    body = json.dumps({"instances": rows.tolist()}).encode()

    response = requests.post(
        gunicorn.url + path,
        data=compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    got = predictions if path == "/predict" else [p["label"] for p in predictions]
    assert got == labels.tolist()


def test_a_body_in_two_gzip_members_is_read_whole(gunicorn, expected):
    rows, labels, _ = expected
    body = json.dumps({"instances": rows.tolist()}).encode()
    middle = len(body) // 2

    response, raw = post(
        gunicorn.port,
        "/predict",
        gzip.compress(body[:middle]) + gzip.compress(body[middle:]),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert response.status == 200, raw
    assert json.loads(raw)["predictions"] == labels.tolist()


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "deflate, br", "gzip;q=1"])
def test_another_coding_is_a_415_that_names_the_supported_ones(gunicorn, coding):
    response, raw = post(
        gunicorn.port,
        "/v2/models/digits/infer",
        infer_json(np.zeros((1, 64), np.float32)),
        {"Content-Type": "application/json", "Content-Encoding": coding},
    )

    assert response.status == 415, raw
    assert repr(coding.split(",")[-1].strip()) in json.loads(raw)["error"]
    assert response.getheader("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize(
    ("coding", "body", "fragment"),
    [
        ("gzip", b"not gzip at all", "gzip"),
        ("gzip", gzip.compress(b'{"instances": [[0]]}')[:-6], "gzip"),
        ("deflate", b"\x78\x9c garbage", "deflate"),
        ("deflate", zlib.compress(b"{}") + b"trailing", "deflate"),
        ("gzip", gzip.compress(b"{not json"), "malformed JSON"),
    ],
    ids=["not gzip", "truncated gzip", "not deflate", "trailing bytes", "gzip of bad JSON"],
)
def test_a_corrupt_compressed_body_is_a_400_naming_the_coding(gunicorn, coding, body, fragment):
    response, raw = post(
        gunicorn.port,
        "/predict",
        body,
        {"Content-Type": "application/json", "Content-Encoding": coding},
    )

    assert response.status == 400, raw
    assert fragment in json.loads(raw)["error"]


MIB = 1024 * 1024


def deflate_bomb(mebibytes: int) -> bytes:
    compressor = zlib.compressobj(9)
    block = b"0" * MIB
    return b"".join(compressor.compress(block) for _ in range(mebibytes)) + compressor.flush()


BOMBS = {  # zeros: 960 MiB in 960 gzip members of ~1 KB; 128 MiB in one ~130 KB zlib stream
    "gzip": lambda: gzip.compress(b"0" * MIB, 9) * 960,
    "deflate": lambda: deflate_bomb(128),
}


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compression_bomb_is_a_413_and_the_workers_live_on(gunicorn, coding):
    """Refused once the inflated body passes the limit, in bounded memory."""
    bomb = BOMBS[coding]()
    workers = sorted(gunicorn.worker_pids())

    response, raw = post(
        gunicorn.port,
        "/v2/models/digits/infer",
        bomb,
        {"Content-Type": "application/json", "Content-Encoding": coding},
    )

    assert len(bomb) < LIMIT
    assert response.status == 413, raw
    assert "decompressed" in json.loads(raw)["error"]
    assert sorted(gunicorn.worker_pids()) == workers
    assert requests.get(gunicorn.url + "/v2/health/ready", timeout=10).status_code == 200


def test_a_compressed_body_over_the_limit_before_decompression_is_a_413(gunicorn):
    body = gzip.compress(np.random.default_rng(0).bytes(LIMIT + 1024), compresslevel=1)

    response, raw = post(
        gunicorn.port,
        "/predict",
        body,
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert response.status == 413 and json.loads(raw) == {"error": "request body too large"}


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("gzip, deflate, br", "gzip"),
        ("br;q=1.0, deflate;q=0.5", "deflate"),
        ("*", "gzip"),
        ("gzip;q=0, deflate;q=0", None),
        ("br", None),
        ("identity", None),
        (None, None),
    ],
)
def test_a_large_answer_is_compressed_as_the_client_accepts(gunicorn, accept, coding):
    headers = {"Content-Type": "application/json", "Accept-Encoding": accept or ""}
    if accept is None:
        del headers["Accept-Encoding"]
    rows = np.zeros((8, 64), np.float32)

    response, raw = post(gunicorn.port, "/v2/models/digits/infer", infer_json(rows), headers)

    decompress = {
        "gzip": gzip.decompress,
        "deflate": zlib.decompress,
        None: lambda data: data,
    }[coding]
    body = decompress(raw)
    assert response.status == 200
    assert response.getheader("Content-Encoding") == coding
    assert "Accept-Encoding" in response.getheader("Vary", "")
    assert len(body) > 1024 and node_parse_errors(body) == [None]
    assert int(response.getheader("Content-Length")) == len(raw)


def test_a_small_answer_is_not_compressed(gunicorn):
    response = requests.get(
        gunicorn.url + "/v2/health/live", headers={"Accept-Encoding": "gzip"}, timeout=10
    )

    assert response.status_code == 200 and "Content-Encoding" not in response.headers


def test_errors_are_never_compressed_so_tritonclient_reads_a_long_one(gunicorn):
    """tritonclient decompresses inference results, not error bodies."""
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    tensor = triton.InferInput("pixels", [1, 64], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 64), np.float32), binary_data=False)
    long_name = "x" * 5000

    with pytest.raises(InferenceServerException, match="unknown output 'xxxx"):
        client.infer(
            "digits",
            [tensor],
            outputs=[triton.InferRequestedOutput(long_name, binary_data=False)],
            request_compression_algorithm="gzip",
            response_compression_algorithm="gzip",
        )

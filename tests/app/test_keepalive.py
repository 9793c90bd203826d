"""A kept-alive connection stays usable after an early error: an answer given before the body
was read (404, 415, 503) still reads the body (up to MAX_REQUEST_BYTES) and keeps the
connection; a body over the limit is not read, and the answer says `Connection: close`.
gunicorn alone drains 64 KiB and then drops a connection it announced as keep-alive."""

import contextlib
import gzip
import http.client
import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support.gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow

ROWS = np.random.default_rng(0).random((400, 64), dtype=np.float32)  # ~500 KB as JSON
LARGE_BODY = json.dumps(
    {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [400, 64], "data": ROWS.tolist()}]}
).encode()
OVER_THE_LIMIT = b" " * (1024 * 1024 + 1)  # MAX_REQUEST_BYTES is 1 MiB by default
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def unloaded(sample) -> Iterator[GunicornServer]:
    """A server whose model can't load (version 2 isn't installed): 503 on inference."""
    with GunicornServer({**sample["env"], "MODEL_VERSION": "2"}, workers=1) as server:
        yield server


def early_errors(gunicorn: GunicornServer, unloaded: GunicornServer) -> dict[str, tuple]:
    """Answers given before the app reads the body: (port, path, headers, expected status)."""
    return {
        "404 unknown model": (gunicorn.port, "/v2/models/other/infer", JSON, 404),
        "404 unknown version": (gunicorn.port, "/v2/models/digits/versions/9/infer", JSON, 404),
        "404 no such route": (gunicorn.port, "/v2/models/digits/nope", JSON, 404),
        "405 wrong method": (gunicorn.port, "/v2/health/live", JSON, 405),
        "415 content type": (
            gunicorn.port,
            "/v2/models/digits/infer",
            {"Content-Type": "text/plain"},
            415,
        ),
        "415 content coding": (
            gunicorn.port,
            "/v2/models/digits/infer",
            {**JSON, "Content-Encoding": "br"},
            415,
        ),
        "503 model not loaded": (unloaded.port, "/v2/models/digits/infer", JSON, 503),
    }


CASES = [
    "404 unknown model",
    "404 unknown version",
    "404 no such route",
    "405 wrong method",
    "415 content type",
    "415 content coding",
    "503 model not loaded",
]


@pytest.mark.parametrize("case", CASES)
def test_an_early_error_on_a_large_body_keeps_the_connection_usable(gunicorn, unloaded, case):
    port, path, headers, status = early_errors(gunicorn, unloaded)[case]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=LARGE_BODY, headers=headers)
        first = connection.getresponse()
        first.read()
        sock = connection.sock  # the very socket the next request must travel on

        connection.request("GET", "/v2/health/live")
        second = connection.getresponse()
        second.read()
        same_socket = sock is not None and connection.sock is sock
    finally:
        connection.close()

    assert first.status == status
    assert first.getheader("Connection") == "keep-alive"
    assert second.status == 200 and same_socket


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_answered_with_connection_close(gunicorn, chunked):
    """A declared length over the limit is refused unread; a chunked body is read up to the
    limit, then up to as much again to find its end: 3 MiB is past both."""
    connection = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=30)
    body = (b" " * 65536 for _ in range(48)) if chunked else OVER_THE_LIMIT
    headers = JSON if chunked else {**JSON, "Content-Length": str(len(OVER_THE_LIMIT))}
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                "POST", "/predict", body=body, headers=headers, encode_chunked=chunked
            )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()

    assert response.status == 413
    assert response.getheader("Connection") == "close"


def test_a_gzip_body_that_inflates_over_the_limit_keeps_the_connection(gunicorn):
    """The compressed body was read whole: nothing is left on the connection."""
    connection = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/predict",
            body=gzip.compress(OVER_THE_LIMIT),
            headers={**JSON, "Content-Encoding": "gzip"},
        )
        first = connection.getresponse()
        first.read()
        connection.request("GET", "/v2/health/live")
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()

    assert (first.status, first.getheader("Connection")) == (413, "keep-alive")
    assert second.status == 200


def test_tritonclient_reuses_its_connection_after_each_early_error(gunicorn):
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    large = triton.InferInput("pixels", list(ROWS.shape), "FP32")
    large.set_data_from_numpy(ROWS, binary_data=False)
    small = triton.InferInput("pixels", [1, 64], "FP32")
    small.set_data_from_numpy(ROWS[:1], binary_data=False)
    label = [triton.InferRequestedOutput("label", binary_data=False)]
    errors, answers = [], []

    for _ in range(10):
        for model, version in (("other", ""), ("digits", "9")):
            try:
                client.infer(model, [large], outputs=label, model_version=version)
            except InferenceServerException as error:
                errors.append(error.status())
        answers.append(client.infer("digits", [small], outputs=label).as_numpy("label").shape)

    assert errors == ["404"] * 20
    assert answers == [(1,)] * 10


def test_tritonclient_reuses_its_connection_after_each_503(unloaded):
    client = triton.InferenceServerClient(unloaded.url.removeprefix("http://"))
    large = triton.InferInput("pixels", list(ROWS.shape), "FP32")
    large.set_data_from_numpy(ROWS, binary_data=False)
    errors, names = [], []

    for _ in range(10):
        try:
            client.infer("digits", [large])
        except InferenceServerException as error:
            errors.append(error.status())
        names.append(client.get_server_metadata()["name"])

    assert errors == ["503"] * 10
    assert names == ["ai-app"] * 10


def test_tritonclient_recovers_after_a_413_that_closed_the_connection(gunicorn):
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    rows = np.zeros((1, 64), dtype=np.float32)
    huge = triton.InferInput("pixels", [1, 64], "FP32")
    huge.set_data_from_numpy(rows, binary_data=False)
    small = triton.InferInput("pixels", [1, 64], "FP32")
    small.set_data_from_numpy(rows, binary_data=False)
    label = [triton.InferRequestedOutput("label", binary_data=False)]
    statuses = []

    for _ in range(5):
        try:
            client.infer("digits", [huge], outputs=label, request_id="x" * (1024 * 1024))
        except InferenceServerException as error:
            statuses.append(error.status())
        statuses.append(client.infer("digits", [small], outputs=label).as_numpy("label").shape)

    assert statuses == ["413", (1,)] * 5

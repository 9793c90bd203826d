"""Named hostile requests against a real gunicorn: each is a 4xx JSON error, none a 5xx."""

import contextlib
import gzip
import http.client
import json
import zlib
from pathlib import Path

import pytest

from tests.support.gunicorn_server import GunicornServer

pytestmark = pytest.mark.slow

OIP_ROUTE = "/v2/models/digits/infer"
ROUTES = ["/predict", OIP_ROUTE, "/v1/models/digits:predict"]
ROW = [0.0] * 64


def oip(data: object, datatype: str = "FP32", shape: object = (1, 64)) -> dict:
    return {
        "inputs": [{"name": "pixels", "shape": list(shape), "datatype": datatype, "data": data}]
    }


def body_for(route: str, data_text: str) -> bytes:
    """A request whose tensor data is `data_text`, spliced in as raw JSON text."""
    template = oip("@") if route == OIP_ROUTE else {"instances": "@"}
    return json.dumps(template).replace('"@"', data_text).encode()


HOSTILE_BODIES = {
    "deeply nested JSON": lambda route: b"[" * 100_000 + b"]" * 100_000,
    "deeply nested data": lambda route: body_for(route, "[" * 5_000 + "1" + "]" * 5_000),
    "NaN literal": lambda route: body_for(route, "[[" + ", ".join(["NaN"] * 64) + "]]"),
    "Infinity literal": lambda route: body_for(route, "[[Infinity" + ", 0" * 63 + "]]"),
    "-Infinity literal": lambda route: body_for(route, "[[-Infinity" + ", 0" * 63 + "]]"),
    "NaN in an ignored field": lambda route: b'{"instances": [], "inputs": [], "x": NaN}',
    "number past float64": lambda route: body_for(route, "[[1e999" + ", 0" * 63 + "]]"),
    "number past float32": lambda route: body_for(route, "[[1e39" + ", 0" * 63 + "]]"),
    "5000-digit integer": lambda route: body_for(route, "[[" + "9" * 5000 + ", 0" * 63 + "]]"),
    "integer past int64": lambda route: body_for(route, "[[" + str(2**70) + ", 0" * 63 + "]]"),
    "strings for numbers": lambda route: body_for(route, json.dumps([["1"] * 64])),
    "ragged rows": lambda route: body_for(route, json.dumps([ROW, ROW[:10]])),
    "batch over the limit": lambda route: json.dumps(
        oip([ROW] * 65, shape=(65, 64)) if route == OIP_ROUTE else {"instances": [ROW] * 65}
    ).encode(),
    "invalid UTF-8": lambda route: b'{"instances": "\xff\xfe"}',
    "empty body": lambda route: b"",
    "JSON null": lambda route: b"null",
    "duplicate keys": lambda route: b'{"instances": 1, "instances": [[1]], "inputs": 2}',
}


MIB = 1024 * 1024
PEAK_GROWTH = 32 * MIB  # MAX_REQUEST_BYTES is 1 MiB: a decoder that ignores it grows by 128+


def peak_memory(pids: list[int]) -> dict[int, int]:
    """Each process's highest resident set size so far (VmHWM), in bytes."""
    peaks = {}
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
        peaks[pid] = int(line.split()[1]) * 1024
    return peaks


def deflate_bomb(mebibytes: int) -> bytes:
    """Zeros that inflate to `mebibytes` MiB, in one zlib stream of about 1 KB per MiB."""
    compressor = zlib.compressobj(9)
    block = b"0" * MIB
    return b"".join(compressor.compress(block) for _ in range(mebibytes)) + compressor.flush()


def gzip_bomb() -> bytes:
    """960 MiB of zeros in 960 gzip members of about 1 KB each: under 1 MiB in all."""
    return gzip.compress(b"0" * MIB, 9) * 960


# (Content-Encoding, body, status): compressed bodies a client controls to the last byte.
HOSTILE_CODINGS = {
    "gzip bomb, 960 MiB": ("gzip", gzip_bomb, 413),
    "deflate bomb, 128 MiB": ("deflate", lambda: deflate_bomb(128), 413),
    "a bomb in a bomb": ("gzip, deflate", lambda: zlib.compress(gzip_bomb()), 413),
    "40,000 empty gzip members": ("gzip", lambda: gzip.compress(b"") * 40_000, 400),
    "truncated gzip": (
        "gzip",
        lambda: gzip.compress(json.dumps({"instances": [ROW]}).encode())[:-9],
        400,
    ),
    "gzip header, then garbage": ("gzip", lambda: b"\x1f\x8b\x08\x00" + b"\xff" * 1000, 400),
    "unknown coding": ("br", lambda: b"{}", 415),
    "coding list of commas": (", , ,", lambda: json.dumps({"instances": [ROW]}).encode(), 200),
}


def post(
    port: int,
    path: str,
    body: bytes,
    content_type: str | None = "application/json",
    **headers: str,
):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    if content_type is not None:
        headers["Content-Type"] = content_type
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


@pytest.fixture(scope="module")
def server(sample):
    with GunicornServer(sample["env"], workers=2) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def workers_at_start(server) -> list[int]:
    """The worker PIDs before the first hostile request (a restarted worker has a new one)."""
    return sorted(server.worker_pids())


def assert_json_client_error(status: int, content_type: str, raw: bytes, expected=None) -> None:
    assert 400 <= status < 500 if expected is None else status == expected, (status, raw[:300])
    assert content_type == "application/json"
    assert json.loads(raw)["error"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_json_is_a_400(server, route, case):
    status, content_type, raw = post(server.port, route, HOSTILE_BODIES[case](route))

    assert_json_client_error(status, content_type, raw, expected=400)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_a_body_that_is_not_json_is_a_415(server, route, content_type):
    status, returned_type, raw = post(server.port, route, b'{"instances": [[1]]}', content_type)

    assert_json_client_error(status, returned_type, raw, expected=415)


@pytest.mark.parametrize("case", sorted(HOSTILE_CODINGS))
def test_hostile_compressed_bodies_are_answered_in_bounded_memory(server, case):
    coding, make_body, expected = HOSTILE_CODINGS[case]
    headers = {"Content-Encoding": coding}
    peak_before = peak_memory(server.worker_pids())

    status, content_type, raw = post(server.port, "/predict", make_body(), **headers)

    assert status == expected, raw[:300]
    peak_after = peak_memory(peak_before)
    assert max(peak_after[pid] - peak_before[pid] for pid in peak_before) < PEAK_GROWTH
    if expected != 200:
        assert_json_client_error(status, content_type, raw, expected=expected)


def send_then_read(port: int, path: str, body, headers: dict[str, str]):
    """Send as much of the body as the server takes, then read its answer: a server that
    refuses a body answers and closes before the body ends (the send then fails)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request("POST", path, body=body, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


@pytest.mark.parametrize("route", ROUTES)
def test_a_100_mb_body_is_a_413_without_reading_it(server, route):
    body = b"[" + b"0," * (50 * 1024 * 1024) + b"0]"  # 100 MB
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}

    status, content_type, raw = send_then_read(server.port, route, body, headers)

    assert_json_client_error(status, content_type, raw, expected=413)


@pytest.mark.parametrize("route", ROUTES)
def test_a_100_mb_chunked_body_is_a_413(server, route):
    """No Content-Length: the body is cut off at the limit while it streams."""
    chunks = (b"0," * (512 * 1024) for _ in range(100))  # 100 MB in 1 MB chunks

    status, content_type, raw = send_then_read(
        server.port, route, chunks, {"Content-Type": "application/json"}
    )

    assert_json_client_error(status, content_type, raw, expected=413)


def test_the_workers_survived(server, workers_at_start):
    assert sorted(server.worker_pids()) == workers_at_start
    assert "Traceback" not in server.logs()

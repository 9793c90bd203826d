"""Binary tensor data bodies that don't add up, against a real gunicorn: each a 400 JSON error
saying what is wrong, the JSON part still validated as any JSON request; and a binary body
sent without its header told apart from malformed JSON (it was "'utf-8' codec can't
decode", issue 14)."""

import json

import numpy as np
import pytest
import requests

pytestmark = pytest.mark.slow

ROWS = np.zeros((2, 64), dtype=np.float32)
PATH = "/v2/models/digits/infer"


def binary_request(size: object = ROWS.nbytes, **pixels: object) -> bytes:
    """The JSON part of a request whose "pixels" input is binary."""
    tensor = {"name": "pixels", "datatype": "FP32", "shape": [2, 64]}
    tensor |= {"parameters": {"binary_data_size": size}} | pixels
    return json.dumps({"inputs": [tensor]}).encode()


def post(server, body: bytes, header: object = None, **headers: str) -> requests.Response:
    if header is not None:
        headers["Inference-Header-Content-Length"] = str(header)
    return requests.post(server.url + PATH, data=body, headers=headers, timeout=10)


JSON_PART = binary_request()
TENSOR = ROWS.tobytes()


@pytest.mark.parametrize(
    ("body", "header", "says"),
    [
        (JSON_PART + TENSOR, "12a", "Inference-Header-Content-Length '12a' is not a byte count"),
        (JSON_PART + TENSOR, "0x10", "is not a byte count"),
        (
            JSON_PART + TENSOR,
            len(JSON_PART) + len(TENSOR) + 1,
            f"is longer than the {len(JSON_PART) + len(TENSOR)}-byte body",
        ),
        (
            JSON_PART + TENSOR + b"\0",
            len(JSON_PART),
            f"add up to {len(TENSOR)} bytes but {len(TENSOR) + 1} bytes follow the JSON part",
        ),
        (
            JSON_PART + TENSOR[:-4],
            len(JSON_PART),
            f"add up to {len(TENSOR)} bytes but {len(TENSOR) - 4} bytes follow",
        ),
        (
            binary_request(len(TENSOR) - 4) + TENSOR[:-4],
            len(binary_request(len(TENSOR) - 4)),
            "input 'pixels': binary_data_size 508 is not the 512 bytes of 128 FP32 values "
            "(shape [2, 64])",
        ),
        (
            binary_request(data=[0] * 128) + TENSOR,
            len(binary_request(data=[0] * 128)),
            "input 'pixels': data and binary_data_size both given",
        ),
        (
            binary_request(-1),
            len(binary_request(-1)),
            "input 'pixels' parameter 'binary_data_size' must be a whole number",
        ),
        (
            binary_request(),
            None,
            "input 'pixels' has parameters.binary_data_size but the request "
            "has no Inference-Header-Content-Length header",
        ),
        (
            JSON_PART + TENSOR,
            len(JSON_PART) - 2,
            f"malformed JSON part ({len(JSON_PART) - 2} bytes, Inference-Header-Content-Length)",
        ),
        (
            JSON_PART + TENSOR,
            len(JSON_PART) + 12,
            f"malformed JSON part ({len(JSON_PART) + 12} bytes, Inference-Header-Content-Length)"
            ": a JSON value, then 12 more bytes",
        ),
        (
            binary_request(datatype="FP64") + TENSOR,
            len(binary_request(datatype="FP64")),
            "input 'pixels': datatype FP64 but the model takes FP32",
        ),
    ],
    ids=[
        "header not a number",
        "header in hex",
        "header past the body",
        "bytes left over",
        "bytes missing",
        "size not shape x datatype",
        "data and binary",
        "negative size",
        "size without header",
        "header cuts the JSON",
        "header past the JSON",
        "JSON part still validated",
    ],
)
def test_a_binary_body_that_does_not_add_up_is_a_400_saying_what(gunicorn, body, header, says):
    response = post(gunicorn, body, header)

    assert response.status_code == 400
    assert says in response.json()["error"]


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "application/json"])
@pytest.mark.parametrize("value", [0.0, -1.5], ids=["UTF-8 zeros", "not UTF-8"])
def test_a_binary_body_without_its_header_is_a_400_naming_the_header(gunicorn, content_type, value):
    headers = {"Content-Type": content_type} if content_type else {}

    response = post(gunicorn, JSON_PART + np.full_like(ROWS, value).tobytes(), **headers)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error == (
        f"malformed JSON body: a JSON value, then {len(TENSOR)} more bytes; binary tensor "
        "data needs the Inference-Header-Content-Length header, the JSON part's length"
    )


def test_a_body_that_is_not_text_at_all_says_which_byte(gunicorn):
    response = post(gunicorn, b'{"inputs": \xff}')

    assert response.status_code == 400
    assert response.json() == {"error": "malformed JSON body: byte 11 is not UTF-8"}


def test_binary_data_is_taken_with_octet_stream_and_without_a_content_type(gunicorn):
    for headers in ({"Content-Type": "application/octet-stream"}, {}):
        response = post(gunicorn, JSON_PART + TENSOR, len(JSON_PART), **headers)

        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"


def test_another_content_type_is_a_415_naming_both_ways_to_send(gunicorn):
    response = post(gunicorn, JSON_PART + TENSOR, len(JSON_PART), **{"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["error"] == (
        "content type 'text/plain' is not supported; send application/json, or "
        "application/octet-stream with the Inference-Header-Content-Length header"
    )


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ({"binary_data_output": 1}, "request parameter 'binary_data_output' must be true or false"),
        ({"binary_data_output": "yes"}, "'binary_data_output' must be true or false"),
    ],
)
def test_binary_switches_are_booleans(gunicorn, parameters, says):
    body = json.dumps({"inputs": [], "parameters": parameters}).encode()

    response = post(gunicorn, body)

    assert response.status_code == 400
    assert says in response.json()["error"]


def test_an_outputs_binary_data_overrides_the_requests_binary_data_output(gunicorn):
    request = json.loads(JSON_PART) | {
        "outputs": [
            {"name": "label", "parameters": {"binary_data": False}},
            {"name": "probabilities"},
        ],
        "parameters": {"binary_data_output": True},
    }
    json_part = json.dumps(request).encode()

    response = post(gunicorn, json_part + TENSOR, len(json_part))

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    label, probabilities = json.loads(response.content[:length])["outputs"]
    assert len(label["data"]) == 2 and "parameters" not in label
    assert probabilities["parameters"] == {"binary_data_size": 2 * 10 * 4}
    values = np.frombuffer(response.content[length:], "<f4").reshape(probabilities["shape"])
    np.testing.assert_allclose(values.sum(axis=1), 1, rtol=1e-5)

"""What every response promises: the model's name, version and digest headers, errors
included; and a body over the limit refused from its Content-Length, before it is read."""

import http.client
import socket
import time

import pytest

from app import create_app
from app.config import AppConfig

ROW = [0.0] * 64


def test_every_response_carries_the_model_headers_errors_included(config, sample):
    client = create_app(config).test_client()
    responses = {
        "200 root": client.get("/"),
        "200 infer": client.post("/predict", json={"instances": [ROW]}),
        "400 malformed JSON": client.post("/predict", data="{", content_type="application/json"),
        "404 route": client.get("/nope"),
        "404 model": client.get("/v2/models/other"),
        "405 method": client.get("/predict"),
        "413 too large": client.post(
            "/predict", data=b" " * (config.max_request_bytes + 1), content_type="application/json"
        ),
        "415 content type": client.post("/predict", data="{}", content_type="text/plain"),
    }

    statuses = {case: response.status_code for case, response in responses.items()}
    assert statuses == {case: int(case.split()[0]) for case in responses}
    for case, response in responses.items():
        headers = (response.headers.get("X-Model-Name"), response.headers.get("X-Model-Version"))
        assert headers == ("digits", "1"), case
        assert response.headers.get("X-Model-Digest") == sample["digest"], case


def test_no_digest_header_while_no_model_is_loaded(model_root, sample):
    client = create_app(AppConfig(model_root, "digits", "2")).test_client()

    response = client.get("/v2/health/ready")

    assert response.status_code == 503
    assert response.headers["X-Model-Version"] == "2" and "X-Model-Digest" not in response.headers


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/predict", "/v2/models/digits/infer"])
def test_a_10_gb_content_length_is_413_at_once_with_no_body_sent(gunicorn, route):
    """Only the request's head is sent: a server that read the body first would wait."""
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gunicorn.port), timeout=5) as connection:
        started = time.monotonic()
        connection.sendall(head.encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        body = response.read(response.length or 0)
        seconds = time.monotonic() - started

    assert response.status == 413, body
    assert response.getheader("Content-Type") == "application/json"
    assert b"request body too large" in body
    assert seconds < 2, seconds

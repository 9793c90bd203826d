"""Every route and every client error, through Flask's test client."""

import io
import json

import numpy as np
import pytest
from prometheus_client import generate_latest


def infer_body(rows: np.ndarray, **extra) -> dict:
    return {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ],
        **extra,
    }


def test_health_routes_report_live_and_ready(client):
    assert client.get("/v2/health/live").json == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json == {"ready": True}
    assert client.get("/v2/models/digits/ready").json == {"name": "digits", "ready": True}


def test_readiness_fails_while_draining_and_inference_goes_on(client, tmp_path, monkeypatch):
    flag = tmp_path / "master.draining"  # what app/arbiter.py raises on SIGTERM
    monkeypatch.setenv("APP_DRAIN_FLAG", str(flag))
    assert client.get("/v2/health/ready").status_code == 200

    flag.touch()

    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/digits/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200
    assert client.post("/predict", json={"instances": [[0.0] * 64]}).status_code == 200


def test_root_and_server_metadata_name_the_model(client, sample):
    root = client.get("/").json
    assert root["model"] == {"name": "digits", "version": "1", "digest": sample["digest"]}
    assert client.get("/v2").json["name"] == "ai-app"


def test_every_response_carries_the_model_version_header(client):
    for response in (client.get("/"), client.get("/nope"), client.post("/predict", data="x")):
        assert response.headers["X-Model-Version"] == "1"
        assert response.headers["X-Model-Name"] == "digits"


@pytest.mark.parametrize("path", ["/v2/models/digits", "/v2/models/digits/versions/1"])
def test_model_metadata_comes_from_the_model(client, path):
    body = client.get(path).json
    assert body["name"] == "digits" and body["versions"] == ["1"]
    assert body["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in body["outputs"]] == ["label", "probabilities"]


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v2/models/digits/versions/1/infer"])
def test_oip_infer_matches_the_sklearn_model(client, sample, path):
    rows = sample["x_test"][:5]

    body = client.post(path, json=infer_body(rows, id="req-1")).json

    assert body["model_name"] == "digits" and body["model_version"] == "1" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["shape"] == [5] and outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["data"] == sample["sklearn_model"].predict(rows).tolist()
    probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(5, 10)
    np.testing.assert_allclose(
        probabilities, sample["sklearn_model"].predict_proba(rows), atol=1e-4
    )


def test_oip_infer_accepts_nested_data_and_requested_outputs(client, sample):
    rows = sample["x_test"][:2]
    body = {
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2, 64], "data": rows.tolist()}],
        "outputs": [{"name": "label"}],
    }

    outputs = client.post("/v2/models/digits/infer", json=body).json["outputs"]

    assert [o["name"] for o in outputs] == ["label"]
    assert outputs[0]["data"] == sample["sklearn_model"].predict(rows).tolist()


@pytest.mark.parametrize("outputs", [None, []])
def test_oip_infer_without_outputs_or_with_an_empty_list_returns_every_output(client, outputs):
    body = infer_body(np.zeros((2, 64), np.float32))
    if outputs is not None:
        body["outputs"] = outputs

    response = client.post("/v2/models/digits/infer", json=body)

    assert response.status_code == 200, response.json
    assert [o["name"] for o in response.json["outputs"]] == ["label", "probabilities"]


def test_oip_infer_returns_outputs_in_the_order_requested(client):
    body = infer_body(
        np.zeros((1, 64), np.float32), outputs=[{"name": "probabilities"}, {"name": "label"}]
    )

    outputs = client.post("/v2/models/digits/infer", json=body).json["outputs"]

    assert [o["name"] for o in outputs] == ["probabilities", "label"]


def test_predict_returns_predictions_and_the_model(client, sample):
    rows = sample["x_test"][:3]

    body = client.post("/predict", json={"instances": rows.tolist()}).json

    assert body["predictions"] == sample["sklearn_model"].predict(rows).tolist()
    assert body["model"] == {"name": "digits", "version": "1", "digest": sample["digest"]}


ROW = [0.0] * 64


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/predict", b"{not json", 400, "malformed JSON"),
        ("/predict", b"[" * 20000 + b"]" * 20000, 400, "malformed JSON"),
        ("/predict", {"instances": []}, 400, "non-empty list"),
        ("/predict", {"rows": [ROW]}, 400, "non-empty list"),
        ("/predict", [ROW], 400, "instances"),
        ("/predict", {"instances": [ROW[:63]]}, 400, "shape"),
        ("/predict", {"instances": [ROW, ROW[:10]]}, 400, "ragged"),
        ("/predict", {"instances": [["a"] * 64]}, 400, "FP32 values"),
        ("/predict", {"instances": [[True] * 64]}, 400, "FP32 values"),
        ("/predict", {"instances": [ROW] * 9}, 400, "over the maximum 8"),
        (
            "/predict",
            b'{"instances": [[NaN' + b", 0" * 63 + b"]]}",
            400,
            "NaN is not a JSON number",
        ),
        (
            "/predict",
            b'{"instances": [[Infinity' + b", 0" * 63 + b"]]}",
            400,
            "Infinity is not a JSON number",
        ),
        ("/predict", {"instances": [[1e39, *ROW[1:]]]}, 400, "too large"),
        ("/predict", {"instances": [[10**400, *ROW[1:]]]}, 400, "FP32 values"),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "pixels", "datatype": "INT64", "shape": [1, 64], "data": ROW}]},
            400,
            "datatype INT64",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2, 64], "data": ROW}]},
            400,
            "do not fill",
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [
                    {"name": "pixels", "datatype": "FP32", "shape": [1, 32], "data": ROW[:32]}
                ]
            },
            400,
            "does not fit",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, -64], "data": ROW}]},
            400,
            "non-negative",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], "data": ROW}]},
            400,
            "unknown input 'x'",
        ),
        ("/v2/models/digits/infer", {"inputs": []}, 400, "missing inputs"),
        ("/v2/models/digits/infer", {"inputs": "pixels"}, 400, '"inputs" list'),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "outputs": [{"name": "nope"}],
            },
            400,
            "unknown output",
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "outputs": [{"name": "label", "parameters": {"binary_data": 1}}],
            },
            400,
            "'binary_data' must be true or false",
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "outputs": [{"name": "label"}, {"name": "label"}],
            },
            400,
            "output 'label' given twice",
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "outputs": ["label"],
            },
            400,
            'each output must be an object with a string "name"',
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [["pixels"]]},
            400,
            'each input must be an object with a string "name"',
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "parameters": ["binary_data_output"],
            },
            400,
            "request parameters must be an object",
        ),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}],
                "parameters": {"binary_data_output": "true"},
            },
            400,
            "'binary_data_output' must be true or false",
        ),
        ("/v2/models/other/infer", {"inputs": []}, 404, "unknown model 'other'"),
        ("/v2/models/digits/versions/2/infer", {"inputs": []}, 404, "unknown version '2'"),
        ("/v2/models/digits/versions/2", None, 404, "unknown version"),
        ("/no/such/route", None, 404, "no such route"),
    ],
)
def test_client_errors_are_4xx_json_naming_the_problem(client, path, body, status, fragment):
    if body is None:
        response = client.get(path)
    elif isinstance(body, bytes):
        response = client.post(path, data=body, content_type="application/json")
    else:
        response = client.post(path, json=body)

    assert response.status_code == status, response.json
    assert fragment in response.json["error"]


def test_body_over_the_limit_is_413(client):
    response = client.post(
        "/predict", data=b"[" + b"0," * 40000 + b"0]", content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json == {"error": "request body too large"}


def test_wrong_method_is_405_json(client):
    response = client.get("/predict")

    assert response.status_code == 405
    assert "method" in response.json["error"]
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_a_chunked_body_over_the_limit_is_413(client):
    """Without a Content-Length the body is cut off at the limit: that too is a 413."""
    body = b"[" + b"0," * 40000 + b"0]"
    response = client.post(
        "/predict",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 413


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/predict", data=json.dumps({"instances": [ROW]}), content_type="text/plain"
    )

    assert response.status_code == 415
    assert "text/plain" in response.json["error"]


def test_metrics_count_requests_by_route_template(client):
    client.get("/v2/models/digits")
    client.get("/v2/models/digits")
    client.get("/nope/1")

    registry = client.application.extensions["aiapp"].metrics.registry
    text = generate_latest(registry).decode()

    assert (
        'aiapp_http_requests_total{method="GET",route="/v2/models/<name>",status="200"} 2.0' in text
    )
    assert 'route="unmatched",status="404"' in text
    assert 'aiapp_model_info{digest="' in text

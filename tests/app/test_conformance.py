"""Conformance against a real gunicorn, walking the specifications endpoint by endpoint:

- the Open Inference Protocol's REST API (KServe `docs/predict-api/v2/required_api.md` and its
  OpenAPI file `rest_predict_v2.yaml`): health, server metadata, model metadata, inference,
  parameters, tensor data, errors;
- the TF Serving REST API (`tensorflow_serving/g3doc/api_rest.md`), which KServe v1 speaks:
  model status, `:predict` in the row and columnar formats, errors; plus KServe v1's model
  list and `{"name", "ready"}`.

The schemas below are the spec's JSON objects written as JSON Schema; every response body is
also read by node's JSON.parse, a strict parser. A new route or model type that breaks what a
client of either protocol relies on fails here.
"""

import http.client
import json
import math

import jsonschema
import numpy as np
import onnxruntime
import pytest
import tritonclient.http as triton

from tests.app.node_json import node_parse_errors

pytestmark = pytest.mark.slow

STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}
ERROR = {"type": "object", "properties": {"error": STRING}, "required": ["error"]}
METADATA_SERVER = {
    "type": "object",
    "properties": {"name": STRING, "version": STRING, "extensions": STRINGS},
    "required": ["name", "version", "extensions"],
}
METADATA_TENSOR = {
    "type": "object",
    "properties": {
        "name": STRING,
        "datatype": STRING,
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
    "required": ["name", "datatype", "shape"],
}
METADATA_MODEL = {
    "type": "object",
    "properties": {
        "name": STRING,
        "versions": STRINGS,
        "platform": STRING,
        "inputs": {"type": "array", "items": METADATA_TENSOR},
        "outputs": {"type": "array", "items": METADATA_TENSOR},
    },
    "required": ["name", "platform", "inputs", "outputs"],
}
PARAMETERS = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
RESPONSE_OUTPUT = {
    "type": "object",
    "properties": {
        "name": STRING,
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": STRING,
        "parameters": PARAMETERS,
        "data": {"type": "array"},
    },
    "required": ["name", "shape", "datatype", "data"],
}
INFERENCE_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": STRING,
        "model_version": STRING,
        "id": STRING,
        "parameters": PARAMETERS,
        "outputs": {"type": "array", "items": RESPONSE_OUTPUT},
    },
    "required": ["model_name", "outputs"],
}
TF_MODEL_STATUS = {
    "type": "object",
    "properties": {
        "model_version_status": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "version": STRING,
                    "state": {
                        "enum": ["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]
                    },
                    "status": {
                        "type": "object",
                        "properties": {"error_code": STRING, "error_message": STRING},
                        "required": ["error_code"],
                    },
                },
                "required": ["version", "state", "status"],
            },
        }
    },
    "required": ["model_version_status"],
}
KSERVE_V1_READY = {
    "type": "object",
    "properties": {"name": STRING, "ready": {"type": "boolean"}},
    "required": ["name", "ready"],
}


class Wire:
    """http.client against the server: each answer's status, headers and body, every body
    kept for node's strict parse at the end of the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies: list[bytes] = []

    def call(self, method: str, path: str, body: object = None, **headers: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            if data is not None:
                headers.setdefault("Content-Type", "application/json")
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        self.bodies.append(raw)
        assert response.getheader("Content-Type") == "application/json", (path, raw[:200])
        assert int(response.getheader("Content-Length")) == len(raw)
        return response.status, json.loads(raw)

    def assert_strict_json(self) -> None:
        errors = node_parse_errors(*self.bodies)
        assert errors == [None] * len(self.bodies), errors


@pytest.fixture
def wire(gunicorn):
    wire = Wire(gunicorn.port)
    yield wire
    wire.assert_strict_json()


@pytest.fixture(scope="module")
def reference(sample):
    """What the model answers in process, for a batch of 3."""
    rows = sample["x_test"][:3]
    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    labels, probabilities = session.run(["label", "probabilities"], {"pixels": rows})
    return rows, labels, probabilities


def conforms(instance: object, schema: dict) -> None:
    jsonschema.validate(instance, schema)


# ------------------------------------------------------------------ OIP: health


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
def test_oip_server_live_and_ready_are_200(wire, path):
    status, _ = wire.call("GET", path)

    assert status == 200


@pytest.mark.parametrize("path", ["/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"])
def test_oip_model_ready_is_200_for_the_model_and_its_version(wire, path):
    status, _ = wire.call("GET", path)

    assert status == 200


@pytest.mark.parametrize(
    "path",
    ["/v2/models/other/ready", "/v2/models/digits/versions/9/ready", "/v2/models/DIGITS/ready"],
)
def test_oip_model_ready_is_a_4xx_for_what_isnt_served_names_are_case_sensitive(wire, path):
    status, body = wire.call("GET", path)

    assert 400 <= status < 500
    conforms(body, ERROR)


# ------------------------------------------------------------------ OIP: server metadata


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_oip_server_metadata_at_v2_with_or_without_the_slash(wire, path):
    status, body = wire.call("GET", path)

    assert status == 200
    conforms(body, METADATA_SERVER)


# ------------------------------------------------------------------ OIP: model metadata


@pytest.mark.parametrize("path", ["/v2/models/digits", "/v2/models/digits/versions/1"])
def test_oip_model_metadata_describes_every_tensor(wire, path):
    status, body = wire.call("GET", path)

    assert status == 200
    conforms(body, METADATA_MODEL)
    assert body["name"] == "digits" and "1" in body["versions"]
    assert body["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 10]),
    ]


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/digits/versions/9"])
def test_oip_model_metadata_error_is_an_error_status_with_the_error_object(wire, path):
    status, body = wire.call("GET", path)

    assert status == 404
    conforms(body, ERROR)


# ------------------------------------------------------------------ OIP: inference


def oip_request(rows: np.ndarray, nested: bool = False, **extra) -> dict:
    data = rows.tolist() if nested else rows.ravel().tolist()
    tensor = {"name": "pixels", "shape": list(rows.shape), "datatype": "FP32", "data": data}
    return {"inputs": [tensor], **extra}


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v2/models/digits/versions/1/infer"])
def test_oip_inference_as_in_the_spec_example(wire, reference, path):
    """id echoed; the requested output only; shape and data of the whole batch, row-major."""
    rows, _, probabilities = reference

    status, body = wire.call(
        "POST", path, oip_request(rows, id="42", outputs=[{"name": "probabilities"}])
    )

    assert status == 200
    conforms(body, INFERENCE_RESPONSE)
    assert body["id"] == "42" and body["model_name"] == "digits" and body["model_version"] == "1"
    (output,) = body["outputs"]
    assert output["name"] == "probabilities" and output["datatype"] == "FP32"
    assert output["shape"] == [3, 10] and len(output["data"]) == math.prod(output["shape"])
    np.testing.assert_allclose(np.reshape(output["data"], (3, 10)), probabilities, rtol=1e-6)


def test_oip_inference_without_outputs_returns_every_output(wire, reference):
    rows, labels, _ = reference

    status, body = wire.call("POST", "/v2/models/digits/infer", oip_request(rows))

    assert status == 200
    conforms(body, INFERENCE_RESPONSE)
    assert [output["name"] for output in body["outputs"]] == ["label", "probabilities"]
    assert body["outputs"][0]["data"] == labels.tolist()
    assert "id" not in body


def test_oip_tensor_data_nested_or_flat_is_the_same_tensor(wire, reference):
    rows, _, _ = reference

    _, flat = wire.call("POST", "/v2/models/digits/infer", oip_request(rows))
    _, nested = wire.call("POST", "/v2/models/digits/infer", oip_request(rows, nested=True))

    assert flat["outputs"] == nested["outputs"]


def test_oip_parameters_unknown_to_the_server_are_ignored(wire, reference):
    rows, labels, _ = reference
    body = oip_request(rows, parameters={"my_custom_parameter": 42})
    body["inputs"][0]["parameters"] = {"note": "x"}
    body["outputs"] = [{"name": "label", "parameters": {"flag": True}}]

    status, answer = wire.call("POST", "/v2/models/digits/infer", body)

    assert status == 200
    assert answer["outputs"][0]["data"] == labels.tolist()


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v2/models/digits/infer", {"inputs": [{"name": "pixels"}]}, 400),
        ("/v2/models/digits/infer", oip_request(np.zeros((1, 64)), parameters=[1]), 400),
        (
            "/v2/models/digits/infer",
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 64], "datatype": "fp32", "data": [0] * 64}
                ]
            },
            400,
        ),
        ("/v2/models/DIGITS/infer", oip_request(np.zeros((1, 64))), 404),
        ("/v2/models/digits/versions/9/infer", oip_request(np.zeros((1, 64))), 404),
    ],
    ids=["no data", "parameters not an object", "datatype is case-sensitive", "name", "version"],
)
def test_oip_inference_errors_are_an_error_status_with_the_error_object(wire, path, body, status):
    got, answer = wire.call("POST", path, body)

    assert got == status
    conforms(answer, ERROR)


def test_tritonclient_walks_every_oip_endpoint(gunicorn, reference):
    rows, labels, probabilities = reference
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")
    ]

    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    assert not client.is_model_ready("other")
    conforms(client.get_server_metadata(), METADATA_SERVER)
    conforms(client.get_model_metadata("digits", "1"), METADATA_MODEL)
    result = client.infer("digits", [tensor], outputs=outputs, request_id="7", model_version="1")
    assert result.get_response()["id"] == "7"
    assert result.as_numpy("label").tolist() == labels.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


# ------------------------------------------------------------------ TF Serving / KServe v1


@pytest.mark.parametrize("path", ["/v1/models/digits", "/v1/models/digits/versions/1"])
def test_tf_serving_model_status_and_kserve_v1_model_ready(wire, path):
    status, body = wire.call("GET", path)

    assert status == 200
    conforms(body, TF_MODEL_STATUS)
    conforms(body, KSERVE_V1_READY)
    assert body["name"] == "digits" and body["ready"] is True
    assert body["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]


def test_kserve_v1_lists_the_model(wire):
    status, body = wire.call("GET", "/v1/models")

    assert (status, body) == (200, {"models": ["digits"]})


@pytest.mark.parametrize(
    "path", ["/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"]
)
@pytest.mark.parametrize("signature", [None, "serving_default"])
def test_tf_serving_row_format_answers_predictions_objects_for_several_outputs(
    wire, reference, path, signature
):
    """Rows in ("instances"), rows out ("predictions"), one object per instance."""
    rows, labels, probabilities = reference
    body = {"instances": rows.tolist()}
    if signature:
        body["signature_name"] = signature

    status, answer = wire.call("POST", path, body)

    assert status == 200 and set(answer) == {"predictions"}
    predictions = answer["predictions"]
    assert len(predictions) == 3
    assert [p["label"] for p in predictions] == labels.tolist()
    np.testing.assert_allclose([p["probabilities"] for p in predictions], probabilities, rtol=1e-6)


def test_tf_serving_row_format_takes_one_object_per_instance(wire, reference):
    rows, labels, _ = reference

    status, answer = wire.call(
        "POST", "/v1/models/digits:predict", {"instances": [{"pixels": r} for r in rows.tolist()]}
    )

    assert status == 200
    assert [p["label"] for p in answer["predictions"]] == labels.tolist()


@pytest.mark.parametrize("named", [True, False], ids=["map of inputs", "the sole input"])
def test_tf_serving_columnar_format_answers_outputs_by_name(wire, reference, named):
    """Columns in ("inputs"), columns out ("outputs"): an object keyed by output name."""
    rows, labels, probabilities = reference
    inputs = {"pixels": rows.tolist()} if named else rows.tolist()

    status, answer = wire.call("POST", "/v1/models/digits:predict", {"inputs": inputs})

    assert status == 200 and set(answer) == {"outputs"}
    assert answer["outputs"]["label"] == labels.tolist()
    np.testing.assert_allclose(answer["outputs"]["probabilities"], probabilities, rtol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/models/half:predict", {"instances": [[0.0] * 64]}, 404),
        ("/v1/models/digits/versions/9:predict", {"instances": [[0.0] * 64]}, 404),
        ("/v1/models/digits:predict", {"instances": [[0.0] * 64], "inputs": [[0.0] * 64]}, 400),
        ("/v1/models/digits:predict", {"signature_name": "other", "instances": [[0.0] * 64]}, 400),
        ("/v1/models/digits:predict", {"instances": [[0.0] * 10]}, 400),
    ],
    ids=["unknown model", "unknown version", "rows and columns", "signature", "shape"],
)
def test_tf_serving_errors_are_an_error_status_with_the_error_object(wire, path, body, status):
    got, answer = wire.call("POST", path, body)

    assert got == status
    conforms(answer, ERROR)

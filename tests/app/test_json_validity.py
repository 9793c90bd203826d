"""Every 200 is JSON a strict parser reads, non-finite model outputs included: NaN and
±Infinity are written as null (as KServe's orjson writes them), on every inference route."""

import http.client
import json

import numpy as np
import pytest
import tritonclient.http as triton

from app.tensors import json_data
from tests.app.node_json import node_parse_errors

# FP32 inputs near the float32 limit: the sample model's softmax overflows to NaN.
EXTREME_ROWS = [[3e38] * 64, [-3e38] * 64]


def oip_body(rows: list) -> dict:
    return {
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [len(rows), 64], "data": rows}]
    }


ROUTES = {
    "OIP infer": ("/v2/models/digits/infer", oip_body(EXTREME_ROWS)),
    "OIP infer, versioned": ("/v2/models/digits/versions/1/infer", oip_body(EXTREME_ROWS)),
    "/predict": ("/predict", {"instances": EXTREME_ROWS}),
    "v1 predict, rows": ("/v1/models/digits:predict", {"instances": EXTREME_ROWS}),
    "v1 predict, columns": ("/v1/models/digits/versions/1:predict", {"inputs": EXTREME_ROWS}),
}


def post_raw(port: int, path: str, body: dict) -> tuple[int, bytes]:
    """The status and the response's bytes exactly as sent (no client-side JSON parsing)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST", path, json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_json_data_writes_null_for_nan_and_both_infinities_and_keeps_the_shape():
    values = np.array([[1.5, np.nan], [np.inf, -np.inf]], dtype=np.float32)

    assert json_data(values) == [[1.5, None], [None, None]]
    assert json_data(values.ravel()) == [1.5, None, None, None]
    assert json_data(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]
    assert json_data(np.array([0.25], dtype=np.float16)) == [0.25]


def test_a_nan_that_reaches_the_json_writer_anyway_is_an_error_not_a_literal(client):
    """A last guard behind json_data: Flask's writer refuses NaN and Infinity outright."""
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="JSON compliant"):
            client.application.json.dumps({"x": value})


def test_non_finite_outputs_are_null_in_every_answer_shape(client):
    """In process: OIP outputs, v1 rows and columns."""
    oip = client.post("/v2/models/digits/infer", json=oip_body(EXTREME_ROWS)).json
    rows = client.post("/v1/models/digits:predict", json={"instances": EXTREME_ROWS}).json
    columns = client.post("/v1/models/digits:predict", json={"inputs": EXTREME_ROWS}).json

    assert oip["outputs"][1]["data"] == [None] * 20
    assert [row["probabilities"] for row in rows["predictions"]] == [[None] * 10] * 2
    assert columns["outputs"]["probabilities"] == [[None] * 10] * 2


@pytest.mark.slow
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_outputs_that_overflow_are_answered_as_json_node_can_parse(gunicorn, route):
    path, body = ROUTES[route]

    status, raw = post_raw(gunicorn.port, path, body)

    assert status == 200, raw[:300]
    assert node_parse_errors(raw) == [None], raw[:300]


@pytest.mark.slow
def test_non_finite_outputs_are_null_where_the_number_would_be(gunicorn):
    status, raw = post_raw(gunicorn.port, "/v2/models/digits/infer", oip_body(EXTREME_ROWS))

    outputs = {output["name"]: output for output in json.loads(raw)["outputs"]}
    probabilities = outputs["probabilities"]
    assert status == 200
    assert probabilities["shape"] == [2, 10] and probabilities["datatype"] == "FP32"
    assert probabilities["data"] == [None] * 20
    assert all(isinstance(label, int) for label in outputs["label"]["data"])


@pytest.mark.slow
def test_v1_predictions_carry_null_for_each_non_finite_value(gunicorn):
    status, raw = post_raw(gunicorn.port, "/v1/models/digits:predict", {"instances": EXTREME_ROWS})

    predictions = json.loads(raw)["predictions"]
    assert status == 200
    assert [prediction["probabilities"] for prediction in predictions] == [[None] * 10] * 2


@pytest.mark.slow
def test_tritonclient_reads_a_null_output_back_as_nan(gunicorn):
    client = triton.InferenceServerClient(gunicorn.url.removeprefix("http://"))
    rows = np.asarray(EXTREME_ROWS, dtype=np.float32)
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)

    result = client.infer(
        "digits",
        [tensor],
        outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)],
    )

    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, 10)
    assert np.isnan(probabilities).all()

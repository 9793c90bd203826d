"""KServe v1 / TF Serving REST routes, in process: model status, `:predict` in the row
(`instances`) and columnar (`inputs`) formats, and every client error a 4xx naming it."""

import numpy as np
import pytest

from app import create_app
from app.config import AppConfig
from app.errors import ApiError
from app.model import TensorSpec
from app.protocols import tfserving

ROW = [0.0] * 64


def test_the_model_list_names_the_served_model(client):
    assert client.get("/v1/models").json == {"models": ["digits"]}


@pytest.mark.parametrize("path", ["/v1/models/digits", "/v1/models/digits/versions/1"])
def test_model_status_reads_as_kserve_and_as_tf_serving(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response.json == {
        "name": "digits",
        "ready": True,
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ],
    }


def test_model_status_of_a_model_that_did_not_load_is_503_and_says_why(model_root, sample):
    client = create_app(AppConfig(model_root, "digits", "2")).test_client()

    response = client.get("/v1/models/digits")

    assert response.status_code == 503
    body = response.json
    assert body["ready"] is False and "not loaded" in body["error"]
    (status,) = body["model_version_status"]
    assert status["version"] == "2" and status["state"] == "END"
    assert status["status"]["error_code"] == "UNAVAILABLE"
    assert "manifest" in status["status"]["error_message"]


def test_model_status_while_draining_is_503_unloading(client, tmp_path, monkeypatch):
    flag = tmp_path / "master.draining"
    monkeypatch.setenv("APP_DRAIN_FLAG", str(flag))
    flag.touch()

    response = client.get("/v1/models/digits")

    assert response.status_code == 503
    assert response.json["model_version_status"][0]["state"] == "UNLOADING"


@pytest.mark.parametrize(
    "path", ["/v1/models/other", "/v1/models/digits/versions/2", "/v1/models/other:predict"]
)
def test_an_unknown_model_or_version_is_a_404(client, path):
    response = client.post(path, json={"instances": [ROW]}) if ":" in path else client.get(path)

    assert response.status_code == 404
    assert "unknown" in response.json["error"]


@pytest.mark.parametrize(
    "path", ["/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"]
)
def test_row_format_predictions_carry_every_output_by_name(client, sample, path):
    rows = sample["x_test"][:4]
    model = sample["sklearn_model"]

    response = client.post(path, json={"instances": rows.tolist()})

    assert response.status_code == 200, response.json
    predictions = response.json["predictions"]
    assert [set(prediction) for prediction in predictions] == [{"label", "probabilities"}] * 4
    assert [prediction["label"] for prediction in predictions] == model.predict(rows).tolist()
    probabilities = [prediction["probabilities"] for prediction in predictions]
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), atol=1e-4)


def test_row_format_takes_instances_that_name_their_inputs(client, sample):
    rows = sample["x_test"][:3]

    response = client.post(
        "/v1/models/digits:predict",
        json={"instances": [{"pixels": row} for row in rows.tolist()]},
    )

    assert response.status_code == 200, response.json
    labels = [prediction["label"] for prediction in response.json["predictions"]]
    assert labels == sample["sklearn_model"].predict(rows).tolist()


@pytest.mark.parametrize("named", [False, True], ids=["value", "object"])
def test_columnar_format_answers_outputs_by_name(client, sample, named):
    rows = sample["x_test"][:5]
    inputs = {"pixels": rows.tolist()} if named else rows.tolist()

    response = client.post(
        "/v1/models/digits:predict", json={"signature_name": "serving_default", "inputs": inputs}
    )

    assert response.status_code == 200, response.json
    outputs = response.json["outputs"]
    assert set(outputs) == {"label", "probabilities"}
    assert outputs["label"] == sample["sklearn_model"].predict(rows).tolist()
    assert np.asarray(outputs["probabilities"]).shape == (5, 10)


def test_predict_is_the_first_output_of_the_v1_row_format(client, sample):
    rows = sample["x_test"][:6].tolist()

    ours = client.post("/predict", json={"instances": rows}).json
    v1 = client.post("/v1/models/digits:predict", json={"instances": rows}).json

    assert ours["predictions"] == [prediction["label"] for prediction in v1["predictions"]]
    assert ours["model"]["name"] == "digits" and ours["model"]["version"] == "1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([ROW], "must be an object"),
        ({}, 'either "instances" (rows) or "inputs" (columns)'),
        ({"instances": [ROW], "inputs": [ROW]}, "not both"),
        ({"instances": [ROW], "signature_name": "predict_images"}, "signature 'predict_images'"),
        ({"instances": [ROW], "signature_name": 7}, "signature_name must be a string"),
        ({"instances": []}, '"instances" must be a non-empty list'),
        ({"instances": {"pixels": [ROW]}}, '"instances" must be a non-empty list'),
        ({"instances": [ROW, ROW[:10]]}, "ragged"),
        ({"instances": [ROW[:63]]}, "shape"),
        ({"instances": [["a"] * 64]}, "FP32 values"),
        ({"instances": [ROW] * 9}, "over the maximum 8"),
        ({"instances": [{"pixels": ROW}, ROW]}, "every instance an object"),
        ({"instances": [{"pixels": ROW, "extra": 1}]}, "unknown input 'extra'"),
        ({"instances": [{}]}, "missing inputs ['pixels']"),
        ({"instances": [{"b64": "aGk="}]}, "'digits' takes no images"),
        ({"inputs": {"x": [ROW]}}, "unknown input 'x'"),
        ({"inputs": {}}, "missing inputs ['pixels']"),
        ({"inputs": "pixels"}, "must be a list"),
        ({"inputs": [ROW] * 9}, "over the maximum 8"),
        ({"inputs": [[1e39, *ROW[1:]]]}, "too large"),
    ],
)
def test_client_errors_are_4xx_json_naming_the_problem(client, body, fragment):
    response = client.post("/v1/models/digits:predict", json=body)

    assert response.status_code == 400, response.json
    assert fragment in response.json["error"]


@pytest.mark.parametrize(
    "results",
    [[np.zeros(2), np.zeros(3)], [np.float32(1).reshape(()), np.float32(2).reshape(())]],
    ids=["batch 2 and 3", "scalars"],
)
def test_outputs_that_cant_split_into_rows_are_refused_and_columns_carry_them(results):
    outputs = (TensorSpec("a", "FP32", (-1,)), TensorSpec("b", "FP32", (-1,)))
    rows = tfserving.PredictRequest(None, {}, outputs, columnar=False)
    columns = tfserving.PredictRequest(None, {}, outputs, columnar=True)

    with pytest.raises(ApiError, match="send the columnar format"):
        tfserving.encode(rows, results)
    assert tfserving.encode(columns, results) == {
        "outputs": {"a": results[0].tolist(), "b": results[1].tolist()}
    }

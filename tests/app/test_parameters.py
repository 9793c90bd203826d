"""OIP `parameters` at request, input and output level: an object of string, number or boolean
values; unknown ones are ignored, as the protocol allows; those that ask for an extension
this server doesn't have (classification, shared memory) are a 400, so a client never gets an
answer in a shape it didn't ask for; binary tensor data's are checked (test_binary_http.py
proves them); Triton's priority and timeout are checked and accepted (there is no queue to
apply them to)."""

import pytest

ROW = [0.0] * 64


def body(request=None, input_=None, output=None) -> dict:
    pixels = {"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}
    label = {"name": "label"}
    if input_ is not None:
        pixels["parameters"] = input_
    if output is not None:
        label["parameters"] = output
    request_body = {"inputs": [pixels], "outputs": [label]}
    if request is not None:
        request_body["parameters"] = request
    return request_body


@pytest.mark.parametrize(
    "parameters",
    [
        {"request": {"my_custom_parameter": 42, "note": "x", "flag": True, "ratio": 0.5}},
        {"input_": {"my_custom_parameter": "anything"}},
        {"output": {"my_custom_parameter": False}},
        {"request": {}, "input_": {}, "output": {}},
        {"request": None, "input_": None, "output": None},
        {"request": {"binary_data_output": False}, "output": {"binary_data": False}},
        {"output": {"classification": 0}},
        {"request": {"priority": 0, "timeout": 0}},
        {"request": {"priority": 2, "timeout": 1_000_000}},
        {"request": {"sequence_id": 0, "headers": "x"}},
    ],
)
def test_parameters_that_ask_nothing_of_the_server_are_accepted(client, parameters):
    response = client.post("/v2/models/digits/infer", json=body(**parameters))

    assert response.status_code == 200, response.json
    assert [output["name"] for output in response.json["outputs"]] == ["label"]


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"request": ["binary_data_output"]}, "request parameters must be an object"),
        ({"request": "x"}, "request parameters must be an object"),
        ({"input_": [1]}, "input 'pixels' parameters must be an object"),
        ({"input_": 7}, "input 'pixels' parameters must be an object"),
        ({"output": "binary_data"}, "output 'label' parameters must be an object"),
        ({"request": {"p": {"nested": 1}}}, "request parameter 'p' must be a string"),
        ({"input_": {"p": [1, 2]}}, "input 'pixels' parameter 'p' must be a string"),
        ({"output": {"p": None}}, "output 'label' parameter 'p' must be a string"),
        ({"request": {"binary_data_output": 1}}, "'binary_data_output' must be true or false"),
        ({"output": {"binary_data": "true"}}, "'binary_data' must be true or false"),
        ({"input_": {"binary_data_size": 256}}, "no Inference-Header-Content-Length header"),
        ({"output": {"classification": 3}}, "classification"),
        ({"input_": {"shared_memory_region": "r0"}}, "shared memory"),
        ({"output": {"shared_memory_byte_size": 64}}, "shared memory"),
        ({"request": {"priority": -1}}, "'priority' must be a whole number"),
        ({"request": {"priority": "high"}}, "'priority' must be a whole number"),
        ({"request": {"timeout": 1.5}}, "'timeout' must be a whole number"),
        ({"request": {"timeout": True}}, "'timeout' must be a whole number"),
    ],
)
def test_malformed_or_unsupported_parameters_are_a_400_naming_them(client, parameters, fragment):
    response = client.post("/v2/models/digits/infer", json=body(**parameters))

    assert response.status_code == 400, response.json
    assert fragment in response.json["error"]


def test_server_metadata_lists_binary_tensor_data_the_one_extension_there_is(client):
    assert client.get("/v2").json["extensions"] == ["binary_tensor_data"]

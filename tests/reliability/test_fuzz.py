"""Hostile input over HTTP against a real gunicorn: generated requests never get a 5xx or
crash a worker; every client error is a 4xx JSON body.

schemathesis generates requests from the OpenAPI document the app serves (/openapi.json);
hypothesis generates arbitrary JSON for the inference routes. FUZZ_EXAMPLES sets the
examples per operation (`make reliability` runs 10,000+ requests in all).
"""

import gzip
import json
import os
import zlib
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.openapi import SPEC
from tests.support.gunicorn_server import GunicornServer

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


def test_no_worker_crashed_or_restarted(server, workers_at_start):
    total = sum(STATUS_CLASSES.values())
    print(f"\nFUZZ: {total} requests, by status class {dict(sorted(STATUS_CLASSES.items()))}")

    assert STATUS_CLASSES["5xx"] == 0
    assert STATUS_CLASSES["2xx"] > EXAMPLES / 10  # the fuzz reached the success path
    assert total >= MIN_REQUESTS
    assert sorted(server.worker_pids()) == workers_at_start
    logs = server.logs()
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs and "Booting worker" in logs

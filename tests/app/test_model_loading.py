"""The app serves only the version it was given, installed and verified by the loader."""

import shutil

from app import create_app
from app.config import AppConfig


def not_ready_reason(config: AppConfig) -> str:
    client = create_app(config).test_client()
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 503
    response = client.post("/predict", json={"instances": [[0.0] * 64]})
    assert response.status_code == 503
    return response.json["error"]


def test_directory_without_the_loaders_manifest_is_refused(model_root, sample, tmp_path):
    unverified = tmp_path / "digits" / "1"
    unverified.mkdir(parents=True)
    shutil.copy(sample["directory"] / "model.onnx", unverified / "model.onnx")

    reason = not_ready_reason(AppConfig(tmp_path, "digits", "1"))

    assert "no manifest.json" in reason


def test_a_version_not_installed_is_not_served(model_root, sample):
    """(A manifest of another version at this path: test_model_identity.py.)"""
    reason = not_ready_reason(AppConfig(model_root, "digits", "2"))

    assert "digits/2: no manifest.json" in reason


def test_a_pinned_digest_that_differs_is_refused(model_root, sample):
    reason = not_ready_reason(AppConfig(model_root, "digits", "1", model_digest="0" * 64))

    assert sample["digest"] in reason and "0" * 64 in reason


def test_matching_pinned_digest_is_served(model_root, sample):
    config = AppConfig(model_root, "digits", "1", model_digest=sample["digest"])

    assert create_app(config).test_client().get("/v2/health/ready").status_code == 200


def test_an_unreadable_manifest_leaves_the_app_up_but_not_ready(sample, tmp_path):
    broken = tmp_path / "digits" / "1"
    broken.mkdir(parents=True)
    shutil.copy(sample["directory"] / "model.onnx", broken / "model.onnx")
    (broken / "manifest.json").write_text('{"name": "digits"')

    reason = not_ready_reason(AppConfig(tmp_path, "digits", "1"))

    assert "unreadable manifest" in reason

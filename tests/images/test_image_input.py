"""model_spec: layout and channels from the ONNX input, the size fitted to it, or refused."""

import pytest

from model_spec import SpecError
from model_spec.image_input import image_input
from model_spec.preprocessing import parse_preprocessing

FIXED = parse_preprocessing(
    {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}}
)
VARYING = parse_preprocessing(
    {"image_processor_type": "CLIPImageProcessor", "do_center_crop": False}
)


@pytest.mark.parametrize(
    ("shape", "layout", "channels"),
    [
        ((-1, 3, 224, 224), "NCHW", 3),
        ((1, 3, -1, -1), "NCHW", 3),
        ((-1, 224, 224, 3), "NHWC", 3),
        ((-1, -1, -1, 3), "NHWC", 3),
        ((-1, -1, -1, -1), "NCHW", 3),  # optimum's export: every dimension dynamic
        ((-1, -1, 224, 224), "NCHW", 3),
    ],
)
def test_layout_and_channels_come_from_the_input_shape(shape, layout, channels):
    spec = image_input(FIXED, shape)
    assert (spec.layout, spec.channels, spec.height, spec.width) == (layout, channels, 224, 224)


def test_one_channel_model_takes_a_single_mean_and_std():
    gray = parse_preprocessing({**_explicit(), "image_mean": 0.5, "image_std": [0.25]})
    spec = image_input(gray, (-1, 1, 28, 28))
    assert (spec.channels, spec.preprocessing.mean, spec.preprocessing.std) == (1, (0.5,), (0.25,))


def test_a_single_mean_applies_to_every_channel():
    spec = image_input(parse_preprocessing({**_explicit(), "image_mean": 0.5}), (-1, 3, 28, 28))
    assert spec.preprocessing.mean == (0.5, 0.5, 0.5)


def _explicit() -> dict:
    return {
        "do_resize": True,
        "size": {"height": 28, "width": 28},
        "do_normalize": True,
        "image_mean": [0.5],
        "image_std": [0.5],
    }


@pytest.mark.parametrize(
    ("preprocessing", "shape", "expected"),
    [
        (FIXED, (-1, 3, 256, 256), "preprocessor_config.json: size: preprocesses to 224x224"),
        (FIXED, (-1, 3, 224, 200), "but the model input takes 224x200"),
        (FIXED, (-1, 3, -1, 200), "but the model input takes ?x200"),
        (VARYING, (-1, 3, 224, 224), "size: the preprocessed size varies with the image"),
        (VARYING, (-1, 3, -1, -1), "fixed neither by the model input nor by this file"),
        (FIXED, (-1, 3, 224), "model input: shape: an image input must have rank 4"),
        (FIXED, (-1, 4, 224, 224), "no channel dimension of 1 or 3"),
        (FIXED, (-1, 224, 224, -1), "no channel dimension of 1 or 3"),
        (FIXED, (-1, 1, 224, 224), "image_mean: has 3 values but the model input has 1 channel"),
    ],
)
def test_mismatches_are_refused(preprocessing, shape, expected):
    with pytest.raises(SpecError) as caught:
        image_input(preprocessing, shape)
    assert expected in str(caught.value)


def test_a_center_crop_names_crop_size_in_the_mismatch():
    clip = parse_preprocessing({"image_processor_type": "CLIPImageProcessor"})
    with pytest.raises(SpecError, match="crop_size: preprocesses to 224x224"):
        image_input(clip, (-1, 3, 336, 336))

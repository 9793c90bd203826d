"""Our preprocessing equals transformers' image processors (PIL backend): max |diff| <= 1e-5.

Each processor style's own preprocessor_config.json (as save_pretrained writes it) goes through
model_spec; the reference is the processor's pixel_values for the same decoded image.
"""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images
from transformers import (
    BitImageProcessorPil,
    CLIPImageProcessorPil,
    ConvNextImageProcessorPil,
    DeiTImageProcessorPil,
    ViTImageProcessorPil,
)

from app.images import to_batch
from model_spec import PREPROCESSOR_CONFIG, read_image_input

TOLERANCE = 1e-5
MAX_PIXELS = 25_000_000

# do_convert_rgb=True where the class default leaves it off: without it transformers keeps a
# grayscale image at 1 channel and an RGBA one at 4, which no 3-channel model takes.
STYLES = {
    "vit": ViTImageProcessorPil(do_convert_rgb=True),
    "vit-bicubic-384": ViTImageProcessorPil(
        do_convert_rgb=True, size={"height": 384, "width": 384}, resample=3
    ),
    "convnext-224-crop_pct": ConvNextImageProcessorPil(
        do_convert_rgb=True, size={"shortest_edge": 224}, crop_pct=0.875
    ),
    "resnet-50": ConvNextImageProcessorPil(
        do_convert_rgb=True,
        size={"shortest_edge": 224},
        crop_pct=0.875,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ),
    "convnext-384-warp": ConvNextImageProcessorPil(do_convert_rgb=True),
    "clip": CLIPImageProcessorPil(),
    "clip-336": CLIPImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
    ),
    "deit": DeiTImageProcessorPil(do_convert_rgb=True),
    "bit": BitImageProcessorPil(),
}


def _inputs() -> dict[str, tuple[bytes, Image.Image]]:
    """Encoded test images, each with the image transformers is given (decoded the same way)."""
    china, flower = (Image.fromarray(a) for a in load_sample_images().images)
    alpha = np.array(flower.convert("RGBA"))
    alpha[..., 3] = np.arange(alpha.shape[1]) % 256  # every opacity, across the width
    images = {
        "china.png": (china, "PNG"),
        "flower.jpg": (flower, "JPEG"),
        "grayscale.png": (china.convert("L"), "PNG"),
        "rgba.png": (Image.fromarray(alpha), "PNG"),
        "palette.gif": (flower.convert("P"), "GIF"),
        "cmyk.jpg": (china.convert("CMYK"), "JPEG"),
        "tiny-3x5.png": (china.resize((3, 5)), "PNG"),
        "wide-2000x20.png": (flower.resize((2000, 20)), "PNG"),
        "tall-20x2000.png": (china.resize((20, 2000)), "PNG"),
    }
    encoded = {}
    for name, (image, fmt) in images.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        data = buffer.getvalue()
        encoded[name] = (data, Image.open(io.BytesIO(data)))
    return encoded


INPUTS = _inputs()


# A 2000x20 image resized by its short side is 100 times wider than tall: a few hundred
# milliseconds per style, so only the main styles of each rule take these two.
EXTREME = {"wide-2000x20.png", "tall-20x2000.png"}
CASES = [
    (style, name)
    for style in sorted(STYLES)
    for name in sorted(INPUTS)
    if name not in EXTREME or style in {"vit", "convnext-224-crop_pct", "clip", "deit"}
]


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, object]:
    """Each style's preprocessor_config.json, as save_pretrained writes it, read by model_spec."""
    specs = {}
    for name, processor in STYLES.items():
        directory = tmp_path_factory.mktemp(name)
        processor.save_pretrained(directory)
        specs[name] = read_image_input(directory, (-1, 3, -1, -1))
    return specs


@pytest.mark.parametrize(("style", "name"), CASES)
def test_pixel_values_equal_transformers(specs, style, name):
    data, image = INPUTS[name]
    ours = to_batch([data], specs[style], np.dtype(np.float32), MAX_PIXELS)
    reference = STYLES[style](image, return_tensors="np")["pixel_values"]
    assert ours.shape == reference.shape
    difference = float(np.abs(ours - reference).max())
    assert difference <= TOLERANCE, f"{style} on {name}: max |diff| {difference}"


def test_every_resample_filter_equals_transformers(tmp_path: Path):
    data, image = INPUTS["flower.jpg"]
    for resample in range(6):
        processor = ViTImageProcessorPil(resample=resample)
        directory = tmp_path / str(resample)
        processor.save_pretrained(directory)
        spec = read_image_input(directory, (-1, 3, 224, 224))
        ours = to_batch([data], spec, np.dtype(np.float32), MAX_PIXELS)
        reference = processor(image, return_tensors="np")["pixel_values"]
        assert float(np.abs(ours - reference).max()) <= TOLERANCE, resample


def test_nhwc_layout_is_the_same_values_channels_last(tmp_path: Path):
    processor = STYLES["clip"]
    data, image = INPUTS["china.png"]
    directory = tmp_path
    processor.save_pretrained(directory)
    spec = read_image_input(directory, (-1, 224, 224, 3))
    ours = to_batch([data], spec, np.dtype(np.float32), MAX_PIXELS)
    reference = processor(image, return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
    assert float(np.abs(ours - reference).max()) <= TOLERANCE


# Files as transformers 4 feature extractors wrote them (microsoft/resnet-50,
# google/vit-base-patch16-224, openai/clip-vit-base-patch32 have this shape): an integer size,
# no do_rescale; transformers fills the gaps from the class, and so do we.
OLD_CONFIGS = {
    "resnet-50": (
        ConvNextImageProcessorPil,
        {
            "crop_pct": 0.875,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "ConvNextFeatureExtractor",
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "resample": 3,
            "size": 224,
        },
    ),
    "vit-base-patch16-224": (
        ViTImageProcessorPil,
        {
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "ViTFeatureExtractor",
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "resample": 2,
            "size": 224,
        },
    ),
    "clip-vit-base-patch32": (
        CLIPImageProcessorPil,
        {
            "crop_size": 224,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3,
            "size": 224,
        },
    ),
}


@pytest.mark.parametrize("name", sorted(OLD_CONFIGS))
def test_transformers_4_files_read_as_transformers_reads_them(tmp_path: Path, name):
    processor_class, config = OLD_CONFIGS[name]
    (tmp_path / PREPROCESSOR_CONFIG).write_text(json.dumps(config))
    processor = processor_class.from_pretrained(tmp_path)
    spec = read_image_input(tmp_path, (-1, 3, 224, 224))
    for data, image in (INPUTS["china.png"], INPUTS["flower.jpg"]):
        ours = to_batch([data], spec, np.dtype(np.float32), MAX_PIXELS)
        reference = processor(image, return_tensors="np")["pixel_values"]
        assert float(np.abs(ours - reference).max()) <= TOLERANCE

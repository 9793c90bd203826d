"""Helpers for the image tests: image specs and encoded images built in memory."""

import io

import numpy as np
from PIL import Image

from model_spec.image_input import ImageInput, image_input
from model_spec.preprocessing import parse_preprocessing

MAX_PIXELS = 25_000_000


def spec(config: dict, shape: tuple[int, ...] = (-1, 3, -1, -1)) -> ImageInput:
    return image_input(parse_preprocessing(config), shape)


# Resize to 32x32 nearest, pixel values / 255: easy to read back.
PLAIN = {
    "do_resize": True,
    "size": {"height": 32, "width": 32},
    "resample": 0,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
}
CLIP = {"image_processor_type": "CLIPImageProcessor"}


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 64, height: int = 48) -> Image.Image:
    """A deterministic RGB image with detail in every channel."""
    rng = np.random.default_rng(width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))

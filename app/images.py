"""Encoded images to a model's input batch: a guarded Pillow decode, then the preprocessing the
model declares (model_spec), with transformers' image-processor arithmetic.

Per image: allowed formats only, the pixel limit checked on the header before any decoding,
the first frame, EXIF orientation applied, any mode converted to RGB (or L for 1-channel
models; transparency composited on white, as transformers does), resize on 8-bit pixels with
PIL, center crop (zero padding), rescale and normalize through a 256-entry table per channel
(the same float32 values transformers computes). Anything wrong with an image is an ApiError
naming the image (numbered from 1, in request order) and the problem; never a 500.
"""

import io
import math
import warnings
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ApiError
from model_spec import ImageInput, Preprocessing

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# Content-Type of a raw image body -> the Pillow format it names.
CONTENT_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/gif": "GIF",
    "image/tiff": "TIFF",
}
_ALLOWED = ", ".join(ALLOWED_FORMATS)
# Our limit (to_batch's max_pixels, checked on the header) is the one that guards decoding:
# Pillow's own would otherwise refuse past twice its MAX_IMAGE_PIXELS whatever we allow.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about a client's corrupt metadata (EXIF, ...): unstructured stderr noise that a
# client could repeat at will; the image is refused or used all the same.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def to_batch(
    images: list[bytes], image_input: ImageInput, dtype: np.dtype, max_pixels: int
) -> np.ndarray:
    """Decode and preprocess each image; one array in the model's layout and dtype."""
    if not images:
        raise ApiError(400, "no images")
    arrays = [
        preprocess(
            decode(data, number, max_pixels, image_input.channels), image_input, number, max_pixels
        )
        for number, data in enumerate(images, 1)
    ]
    return np.stack(arrays).astype(dtype, copy=False)


def decode(data: bytes, number: int, max_pixels: int, channels: int) -> Image.Image:
    """The first frame of an encoded image, upright, in mode RGB (channels 3) or L (1)."""
    where = f"image {number}"
    if not data:
        raise ApiError(400, f"{where}: empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Only if something set Pillow's limit again; still a client error, never a 500.
        raise ApiError(413, f"{where}: more than the limit of {max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise _unidentified(data, where) from None
    except Exception as e:  # Pillow's parsers raise many types on hostile headers
        name = _sniff(data) or "image"
        raise ApiError(400, f"{where}: corrupt {name} header ({_reason(e)})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(
            413, f"{where}: {width}x{height} is more than the limit of {max_pixels} pixels"
        )
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as e:  # truncated or corrupt data surfaces while decoding
        raise ApiError(
            400, f"{where}: truncated or corrupt {image.format} ({_reason(e)})"
        ) from None
    try:
        return _convert(image, channels)
    except ValueError:  # a mode Pillow has no conversion for (LAB to L, ...)
        target = "RGB" if channels == 3 else "L"
        raise ApiError(
            415, f"{where}: {image.mode} pixels cannot be converted to {target}"
        ) from None


def _convert(image: Image.Image, channels: int) -> Image.Image:
    """transformers' convert_to_rgb: transparency composited on white, then RGB (or L).

    transformers takes any band named A for alpha; LAB's A is a colour axis, not opacity.
    """
    mode = "RGB" if channels == 3 else "L"
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return image if image.mode == mode else image.convert(mode)


def preprocess(
    image: Image.Image, image_input: ImageInput, number: int, max_pixels: int
) -> np.ndarray:
    """A decoded image (RGB or L) as a float32 array in the model's layout (CHW or HWC)."""
    p = image_input.preprocessing
    if p.resize is not None:
        height, width = p.resize.target(image.height, image.width)
        if height * width > max_pixels:
            raise ApiError(
                413,
                f"image {number}: {image.width}x{image.height} would resize to {width}x{height}, "
                f"more than the limit of {max_pixels} pixels (aspect ratio too extreme)",
            )
        image = image.resize((width, height), resample=p.resize.resample)
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if p.resize is not None and p.resize.crop is not None:
        pixels = center_crop(pixels, *p.resize.crop)
    if p.center_crop is not None:
        pixels = center_crop(pixels, *p.center_crop)
    table = _table(p, image_input.channels)
    channels = [np.take(table[c], pixels[:, :, c]) for c in range(image_input.channels)]
    return np.stack(channels, axis=0 if image_input.layout == "NCHW" else -1)


def center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' center_crop on (H, W, C): the middle, zero-padded when the image is smaller."""
    h, w = pixels.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return pixels[top : top + height, left : left + width]
    new_h, new_w = max(height, h), max(width, w)
    padded = np.zeros((new_h, new_w, pixels.shape[2]), dtype=pixels.dtype)
    pad_top, pad_left = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    padded[pad_top : pad_top + h, pad_left : pad_left + w] = pixels
    top, left = top + pad_top, left + pad_left
    return padded[max(0, top) : min(new_h, top + height), max(0, left) : min(new_w, left + width)]


@lru_cache(maxsize=64)
def _table(p: Preprocessing, channels: int) -> np.ndarray:
    """(channels, 256) float32: each 8-bit value rescaled and normalized, per channel.

    The arithmetic is transformers': rescale in float64 then cast to float32, normalize in
    float32; so a lookup gives the same numbers as computing it per pixel.
    """
    values = np.arange(256, dtype=np.uint8)
    if p.rescale_factor is not None:
        scaled = (values.astype(np.float64) * p.rescale_factor).astype(np.float32)
    else:
        scaled = values.astype(np.float32)
    table = np.broadcast_to(scaled, (channels, 256))
    if p.mean is not None:
        mean = np.array(p.mean, dtype=np.float32)[:, None]
        std = np.array(p.std, dtype=np.float32)[:, None]
        table = (table - mean) / std
    return np.ascontiguousarray(table, dtype=np.float32)


def _unidentified(data: bytes, where: str) -> ApiError:
    """Why Pillow found no allowed format: a broken header, a refused format, or not an image."""
    name = _sniff(data)
    if name in ALLOWED_FORMATS:
        return ApiError(400, f"{where}: corrupt {name} header")
    if name is not None:
        return ApiError(415, f"{where}: {name} images are not accepted (allowed: {_ALLOWED})")
    return ApiError(415, f"{where}: not an image in an allowed format ({_ALLOWED})")


def _sniff(data: bytes) -> str | None:
    """The format Pillow recognizes from the first bytes, without opening the image."""
    Image.init()
    prefix = data[:16]
    for name, (_factory, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix) is True:
                return name
        except Exception:  # an accept function that can't read this prefix
            continue
    return None


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."

"""app/images.py: hostile or broken images are 4xx ApiErrors naming the image and the problem."""

import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from app.errors import ApiError
from app.images import ALLOWED_FORMATS, to_batch
from tests.images.images import CLIP, MAX_PIXELS, PLAIN, encode, photo, spec

F32 = np.dtype(np.float32)


def refused(data: bytes, config: dict = PLAIN, max_pixels: int = MAX_PIXELS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        to_batch([encode(photo(), "PNG"), data], spec(config), F32, max_pixels)
    assert caught.value.message.startswith("image 2: ")
    assert "\n" not in caught.value.message
    return caught.value


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit RGB pixels and carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header():
    bomb = png_header(6000, 5000)  # 30 megapixels (90 MB decoded) in a ~100-byte file
    started = time.perf_counter()
    error = refused(bomb)
    assert time.perf_counter() - started < 0.5
    assert (error.status, error.message) == (
        413,
        "image 2: 6000x5000 is more than the limit of 25000000 pixels",
    )


def test_the_pixel_limit_is_ours_not_pillows(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert refused(png_header(100, 100), max_pixels=9_999).status == 413
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # Pillow's own error is ours too
    assert refused(png_header(101, 100)).message == (
        "image 2: more than the limit of 25000000 pixels"
    )


def test_huge_declared_size_uses_no_memory():
    """A 100000 x 100000 header (30 GB decoded) in a child process: refused, RSS barely moves."""
    program = f"""
import resource, sys
from app.errors import ApiError
from app.images import decode
data = {png_header(100_000, 100_000)!r}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode(data, 1, 25_000_000, 3)
except ApiError as e:
    print(e.status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    status, grown_kib = result.stdout.split()
    assert status == "413"
    assert int(grown_kib) < 10_000


def test_extreme_aspect_ratio_cannot_resize_past_the_limit():
    thin = encode(Image.new("RGB", (20_000, 1)), "PNG")  # short side 224 -> 224 x 4.48 million
    error = refused(thin, CLIP)
    assert error.status == 413
    assert "20000x1 would resize to 4480000x224" in error.message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "EPS"),
        (b"8BPS\x00\x01" + b"\x00" * 20, "PSD"),
        (encode(photo(16, 16), "ICO"), "ICO"),
        (encode(photo(16, 16), "PPM"), "PPM"),
    ],
)
def test_formats_outside_the_allow_list_are_refused_by_name(data, name):
    error = refused(data)
    assert (error.status, error.message) == (
        415,
        f"image 2: {name} images are not accepted (allowed: JPEG, PNG, WEBP, BMP, GIF, TIFF)",
    )


def test_random_bytes_are_not_an_image():
    error = refused(np.random.default_rng(7).bytes(2000))
    assert (error.status, error.message) == (
        415,
        "image 2: not an image in an allowed format (JPEG, PNG, WEBP, BMP, GIF, TIFF)",
    )


def test_zero_bytes_are_refused():
    assert (refused(b"").status, refused(b"").message) == (400, "image 2: empty")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated_images_are_refused(fmt):
    data = encode(photo(200, 150), fmt)
    error = refused(data[: len(data) // 2])
    assert error.status == 400
    assert error.message.startswith(
        (f"image 2: truncated or corrupt {fmt} (", f"image 2: corrupt {fmt} header")
    )


def test_corrupt_jpeg_names_the_format():
    data = bytearray(encode(photo(200, 150), "JPEG"))
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    data[-2:] = b"\xff\xd9"
    error = refused(bytes(data[: len(data) // 2]))
    assert error.message.startswith("image 2: truncated or corrupt JPEG (")


def test_corrupt_header_is_refused():
    header = png_header(10, 10)
    broken = header[:16] + b"\xff\xff\xff\xff" + header[20:]  # IHDR width 4294967295, bad CRC
    error = refused(broken)
    assert (error.status, error.message) == (400, "image 2: corrupt PNG header")


@pytest.mark.parametrize("seed", range(40))
def test_mutated_images_are_4xx_or_decode(seed):
    """Flipped bytes in every allowed format: an array or a 4xx, nothing else escapes."""
    rng = np.random.default_rng(seed)
    fmt = ALLOWED_FORMATS[seed % len(ALLOWED_FORMATS)]
    data = bytearray(encode(photo(40, 30), fmt))
    for position in rng.integers(0, len(data), 1 + seed % 8):
        data[position] = rng.integers(0, 256)
    try:
        batch = to_batch([bytes(data)], spec(PLAIN), F32, MAX_PIXELS)
    except ApiError as error:
        assert 400 <= error.status < 500
        assert error.message.startswith("image 1: ")
    else:
        assert batch.shape == (1, 3, 32, 32)

"""app/images.py: every allowed format and Pillow mode decodes the way transformers treats it;
first frame, EXIF orientation, 1-channel models, batches and layouts."""

import io

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessorPil
from transformers.image_transforms import center_crop as hf_center_crop
from transformers.image_utils import ChannelDimension

from app.errors import ApiError
from app.images import ALLOWED_FORMATS, CONTENT_TYPES, center_crop, to_batch
from tests.images.images import CLIP, MAX_PIXELS, PLAIN, encode, photo, spec

F32 = np.dtype(np.float32)


def batch(data: bytes, config: dict = PLAIN, shape=(-1, 3, -1, -1), dtype=F32) -> np.ndarray:
    return to_batch([data], spec(config, shape), dtype, MAX_PIXELS)


def test_content_types_name_exactly_the_allowed_formats():
    assert sorted(CONTENT_TYPES.values()) == sorted(ALLOWED_FORMATS)


@pytest.mark.parametrize("fmt", ALLOWED_FORMATS)
def test_every_allowed_format_decodes(fmt):
    image = photo(40, 30)
    values = batch(encode(image, fmt))
    assert values.shape == (1, 3, 32, 32)
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless: exactly the pixels, nearest-resized, / 255
        expected = np.asarray(image.resize((32, 32), Image.Resampling.NEAREST)) / 255
        assert np.abs(values[0].transpose(1, 2, 0) - expected).max() < 1e-6


def _modes() -> dict[str, bytes]:
    rgb = photo(40, 30)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((40, 30)))
    ramp16 = np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50
    palette_transparent = rgb.convert("P")
    return {
        "1": encode(rgb.convert("1"), "PNG"),
        "L": encode(rgb.convert("L"), "PNG"),
        "LA": encode(rgba.convert("LA"), "PNG"),
        "P": encode(rgb.convert("P"), "PNG"),
        "P+transparency": encode(palette_transparent, "PNG", transparency=3),
        "PA": encode(rgba.convert("PA"), "TIFF"),
        "RGB": encode(rgb, "PNG"),
        "RGBA": encode(rgba, "PNG"),
        "CMYK": encode(rgb.convert("CMYK"), "JPEG"),
        "CMYK-tiff": encode(rgb.convert("CMYK"), "TIFF"),
        "I;16": encode(Image.fromarray(ramp16), "PNG"),
        "I": encode(Image.fromarray(ramp16.astype(np.int32) - 1000), "TIFF"),
        "F": encode(Image.fromarray(ramp16.astype(np.float32) / 7), "TIFF"),
    }


MODES = _modes()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_is_converted_as_transformers_does(mode):
    data = MODES[mode]
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == mode.split("+")[0].split("-")[0]
    reference = CLIPImageProcessorPil()(decoded, return_tensors="np")["pixel_values"]
    assert np.abs(batch(data, CLIP) - reference).max() <= 1e-5


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_goes_to_one_channel_for_a_one_channel_model(mode):
    values = batch(MODES[mode], shape=(-1, 1, 32, 32))
    assert values.shape == (1, 1, 32, 32)
    assert 0.0 <= values.min() <= values.max() <= 1.0


def test_transparency_is_white_for_a_one_channel_model():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert batch(encode(clear, "PNG"), shape=(-1, 1, 32, 32)).min() == 1.0


def test_gray_model_reads_luma():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    values = batch(encode(red, "PNG"), shape=(-1, 1, -1, -1))
    assert np.all(values == np.float32(np.uint8(76) / 255))  # ITU-R 601-2: 299/1000 of red


def test_animation_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "lime", "blue")]
    for fmt in ("GIF", "WEBP", "PNG", "TIFF"):
        buffer = io.BytesIO()
        frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], lossless=True)
        values = batch(buffer.getvalue())
        assert np.allclose(values[0, :, 0, 0], [1.0, 0.0, 0.0]), fmt


def test_exif_orientation_is_applied():
    # 60 wide x 30 tall: top half black, bottom half white. Orientation 6 displays it turned a
    # quarter clockwise (30 wide x 60 tall): the white half on the left.
    image = Image.new("L", (60, 30), 0)
    image.paste(255, (0, 15, 60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(image.convert("RGB"), "JPEG", exif=exif, quality=95)
    config = {**PLAIN, "size": {"height": 60, "width": 30}}
    values = batch(data, config, shape=(-1, 3, 60, 30))[0, 0]
    assert values[:, :10].mean() > 0.9 and values[:, -10:].mean() < 0.1


def test_batch_keeps_request_order_and_names_the_bad_image():
    red, blue = (encode(Image.new("RGB", (8, 8), c), "PNG") for c in ("red", "blue"))
    values = to_batch([red, blue, red], spec(PLAIN), F32, MAX_PIXELS)
    assert values.shape == (3, 3, 32, 32)
    assert [values[i, :, 0, 0].argmax() for i in range(3)] == [0, 2, 0]
    with pytest.raises(ApiError, match=r"^image 3: empty$"):
        to_batch([red, blue, b""], spec(PLAIN), F32, MAX_PIXELS)


def test_nhwc_layout_and_the_model_dtype():
    data = encode(photo(40, 30), "PNG")
    nchw = batch(data)
    nhwc = batch(data, shape=(-1, 32, 32, 3), dtype=np.dtype(np.float16))
    assert nhwc.shape == (1, 32, 32, 3) and nhwc.dtype == np.float16
    assert nhwc.flags.c_contiguous
    assert np.abs(nhwc.astype(np.float32) - nchw.transpose(0, 2, 3, 1)).max() < 1e-3


def test_center_crop_takes_the_middle_and_pads_with_zeros():
    pixels = np.arange(35, dtype=np.uint8).reshape(5, 7, 1)
    assert center_crop(pixels, 3, 3)[:, :, 0].tolist() == [[9, 10, 11], [16, 17, 18], [23, 24, 25]]
    small = np.arange(1, 5, dtype=np.uint8).reshape(2, 2, 1)
    padded = [[0, 0, 0], [0, 1, 2], [0, 3, 4], [0, 0, 0]]
    assert center_crop(small, 4, 3)[:, :, 0].tolist() == padded


@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (2, 2), (1, 9), (9, 1), (4, 4), (6, 3)])
@pytest.mark.parametrize("crop", [(3, 3), (4, 5), (6, 6)])
def test_center_crop_equals_transformers(shape, crop):
    pixels = np.arange(1, 1 + shape[0] * shape[1] * 3, dtype=np.uint8).reshape(*shape, 3)
    reference = hf_center_crop(pixels, crop, input_data_format=ChannelDimension.LAST)
    assert np.array_equal(center_crop(pixels, *crop), reference)


def test_a_mode_without_a_conversion_is_refused():
    lab = encode(Image.new("LAB", (8, 8)), "TIFF")
    assert batch(lab).shape == (1, 3, 32, 32)  # LAB converts to RGB
    with pytest.raises(ApiError) as caught:
        batch(lab, shape=(-1, 1, 32, 32))
    assert (caught.value.status, caught.value.message) == (
        415,
        "image 1: LAB pixels cannot be converted to L",
    )


def test_an_empty_batch_is_refused():
    with pytest.raises(ApiError, match=r"^no images$"):
        to_batch([], spec(PLAIN), F32, MAX_PIXELS)

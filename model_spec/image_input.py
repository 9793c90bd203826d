"""What an image model's input wants: layout and channels from the ONNX input, the rest from
preprocessor_config.json."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from model_spec.errors import SpecError
from model_spec.jsonfile import read_object
from model_spec.preprocessing import PREPROCESSOR_CONFIG, Preprocessing, parse_preprocessing

ONNX_INPUT = "model input"  # the "file" part of errors about the ONNX input's shape


@dataclass(frozen=True)
class ImageInput:
    layout: str  # "NCHW" or "NHWC"
    channels: int  # 1 or 3
    height: int
    width: int
    preprocessing: Preprocessing


def read_image_input(directory: Path, input_shape: tuple[int, ...]) -> ImageInput | None:
    """The image input a version directory declares; None without a preprocessor_config.json.

    `input_shape` is the ONNX input's shape with -1 for dynamic dimensions.
    """
    path = Path(directory) / PREPROCESSOR_CONFIG
    if not path.is_file():
        return None
    preprocessing = parse_preprocessing(read_object(path))
    return image_input(preprocessing, input_shape)


def image_input(preprocessing: Preprocessing, input_shape: tuple[int, ...]) -> ImageInput:
    """Match a parsed preprocessing to the ONNX input shape; SpecError on any mismatch."""
    layout, channels, height, width = _layout(tuple(input_shape))
    preprocessing = _per_channel(preprocessing, channels)
    fixed = preprocessing.fixed_size
    if fixed is None:
        if height > 0 or width > 0:
            problem = "the preprocessed size varies with the image, but the model input is fixed"
            raise SpecError(
                PREPROCESSOR_CONFIG,
                preprocessing.size_field,
                f"{problem} ({_dims(height, width)}); add a crop_size or a {{height, width}} size",
            )
        raise SpecError(
            PREPROCESSOR_CONFIG,
            preprocessing.size_field,
            "the image size is fixed neither by the model input nor by this file",
        )
    for dim, want in ((height, fixed[0]), (width, fixed[1])):
        if dim > 0 and dim != want:
            raise SpecError(
                PREPROCESSOR_CONFIG,
                preprocessing.size_field,
                f"preprocesses to {fixed[0]}x{fixed[1]} (height x width) "
                f"but the model input takes {_dims(height, width)}",
            )
    return ImageInput(layout, channels, fixed[0], fixed[1], preprocessing)


def _layout(shape: tuple[int, ...]) -> tuple[str, int, int, int]:
    if len(shape) != 4:
        raise SpecError(ONNX_INPUT, "shape", f"an image input must have rank 4, got {list(shape)}")
    if shape[1] in (1, 3):
        return "NCHW", shape[1], shape[2], shape[3]
    if shape[1] < 0 and shape[3] not in (1, 3):
        # A dynamic channel dimension first, as optimum exports vision models ([batch_size,
        # num_channels, height, width], all dynamic): what transformers' processors give,
        # RGB channels first.
        return "NCHW", 3, shape[2], shape[3]
    if shape[3] in (1, 3):
        return "NHWC", shape[3], shape[1], shape[2]
    raise SpecError(
        ONNX_INPUT,
        "shape",
        f"{list(shape)} has no channel dimension of 1 or 3 (NCHW or NHWC)",
    )


def _per_channel(preprocessing: Preprocessing, channels: int) -> Preprocessing:
    """mean and std with one value per channel (a single value applies to every channel)."""
    values = {}
    for field, name in (("mean", "image_mean"), ("std", "image_std")):
        given = getattr(preprocessing, field)
        if given is None:
            continue
        if len(given) == 1:
            given = given * channels
        if len(given) != channels:
            raise SpecError(
                PREPROCESSOR_CONFIG,
                name,
                f"has {len(given)} values but the model input has {channels} channel(s)",
            )
        values[field] = given
    return dataclasses.replace(preprocessing, **values)


def _dims(height: int, width: int) -> str:
    return f"{height if height > 0 else '?'}x{width if width > 0 else '?'}"

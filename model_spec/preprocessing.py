"""preprocessor_config.json: a Hugging Face image processor's settings, parsed and checked.

The meaning of each field is that of transformers' image processors (PIL backend): convert to
RGB, resize (on 8-bit pixels, with a PIL filter), center crop (zero padding when the image is
smaller), rescale, normalize. A field we don't understand is refused, never ignored.
"""

import math
from dataclasses import dataclass
from typing import Any

from model_spec.errors import SpecError

PREPROCESSOR_CONFIG = "preprocessor_config.json"

# PIL resampling codes (PIL.Image.Resampling), as transformers writes them.
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
MAX_SIDE = 8192
# transformers' ConvNextImageProcessor warps instead of cropping from this size on.
CROP_PCT_WARP_FROM = 384

_OPENAI_CLIP = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
_IMAGENET_STANDARD = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
_ON = {"do_resize": True, "do_rescale": True, "do_normalize": True}
_CLIP_LIKE = {
    **_ON,
    **_OPENAI_CLIP,
    "resample": 3,
    "size": {"shortest_edge": 224},
    "default_to_square": False,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_convert_rgb": True,
}
# Processor families whose transformers class follows the rules above, with the class
# defaults that apply to a field the file leaves out (or sets to null).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "ViT": {**_ON, **_IMAGENET_STANDARD, "resample": 2, "size": {"height": 224, "width": 224}},
    "DeiT": {
        **_ON,
        **_IMAGENET_STANDARD,
        "resample": 3,
        "size": {"height": 256, "width": 256},
        "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224},
    },
    "ConvNext": {
        **_ON,
        **_IMAGENET_STANDARD,
        "resample": 3,
        "size": {"shortest_edge": 384},
        "default_to_square": False,
        "crop_pct": 224 / 256,
    },
    "CLIP": _CLIP_LIKE,
    "Bit": _CLIP_LIKE,
}

# Fields that describe the file, not the preprocessing.
METADATA = {"image_processor_type", "feature_extractor_type", "processor_class", "_processor_class"}
# Call-time options some transformers versions save; accepted only with their neutral value.
NEUTRAL = {
    "data_format": (None, "channels_first"),
    "input_data_format": (None,),
    "return_tensors": (None,),
    "device": (None,),
    "do_pad": (None, False),
    "pad_size": (None,),
    "disable_grouping": (None, True, False),
}
# The parameters of each step: given without the step's flag, the file is ambiguous.
STEP_PARAMETERS = {
    "do_resize": ("size", "resample", "crop_pct"),
    "do_center_crop": ("crop_size",),
    "do_rescale": ("rescale_factor",),
    "do_normalize": ("image_mean", "image_std"),
}
FIELDS = {
    "do_convert_rgb",
    "default_to_square",
    *STEP_PARAMETERS,
    *(p for params in STEP_PARAMETERS.values() for p in params),
}


@dataclass(frozen=True)
class Resize:
    """Resize to height x width, or the short side to shortest_edge (ConvNeXt: see crop_pct)."""

    resample: int
    height: int | None = None
    width: int | None = None
    shortest_edge: int | None = None
    crop_pct: float | None = None

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of that size is resized to."""
        if self.shortest_edge is None:
            return self.height, self.width
        edge = self.shortest_edge
        if self.crop_pct is not None:
            if edge >= CROP_PCT_WARP_FROM:
                return edge, edge
            edge = int(edge / self.crop_pct)
        short, long = min(height, width), max(height, width)
        new_long = int(edge * long / short)
        return (new_long, edge) if width <= height else (edge, new_long)

    @property
    def crop(self) -> tuple[int, int] | None:
        """The center crop that is part of the resize (ConvNeXt's crop_pct rule), if any."""
        if self.crop_pct is None or self.shortest_edge >= CROP_PCT_WARP_FROM:
            return None
        return self.shortest_edge, self.shortest_edge

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The output size when it doesn't depend on the image's size."""
        if self.shortest_edge is None:
            return self.height, self.width
        if self.crop_pct is not None:
            return self.shortest_edge, self.shortest_edge
        return None


@dataclass(frozen=True)
class Preprocessing:
    """What to do to a decoded image, in order: resize, center crop, rescale, normalize.

    Conversion comes first and is not a choice: an image becomes what the model's channels
    need (RGB or L), so do_convert_rgb is accepted with either value.
    """

    resize: Resize | None
    center_crop: tuple[int, int] | None
    rescale_factor: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The (height, width) every image comes out at, or None when it varies."""
        if self.center_crop is not None:
            return self.center_crop
        return self.resize.fixed_size if self.resize is not None else None

    @property
    def size_field(self) -> str:
        """The field that decides the output size (for error messages)."""
        return "crop_size" if self.center_crop is not None else "size"


def parse_preprocessing(config: dict[str, Any], file: str = PREPROCESSOR_CONFIG) -> Preprocessing:
    """Check a preprocessor_config.json object and build the Preprocessing it declares."""
    for key, value in config.items():
        if key in METADATA:
            if not isinstance(value, str):
                raise SpecError(file, key, "must be a string")
        elif key in NEUTRAL:
            if not any(type(value) is type(v) and value == v for v in NEUTRAL[key]):
                allowed = ", ".join(json_repr(v) for v in NEUTRAL[key])
                raise SpecError(file, key, f"only {allowed} is supported, got {json_repr(value)}")
        elif key not in FIELDS:
            raise SpecError(file, key, "not a supported field (see the README's list)")
    processor_type, family = _family(config, file)
    given = {k: v for k, v in config.items() if k in FIELDS and v is not None}
    if family is None:
        for flag, params in STEP_PARAMETERS.items():
            stray = [p for p in params if p in given]
            if stray and flag not in given:
                raise SpecError(file, flag, f"missing while {stray[0]} is given; say true or false")
    else:
        if "crop_pct" in given and family != "ConvNext":
            raise SpecError(file, "crop_pct", f"{processor_type} does not use it")
        given = {**FAMILY_DEFAULTS[family], **given}
    return _build(given, file)


def _family(config: dict[str, Any], file: str) -> tuple[str | None, str | None]:
    key = "image_processor_type" if "image_processor_type" in config else "feature_extractor_type"
    name = config.get(key)
    if name is None:
        return None, None
    base = name.removesuffix("Fast").removesuffix("Pil")
    for suffix in ("ImageProcessor", "FeatureExtractor"):
        if base.endswith(suffix) and base.removesuffix(suffix) in FAMILY_DEFAULTS:
            return name, base.removesuffix(suffix)
    supported = ", ".join(f"{f}ImageProcessor" for f in FAMILY_DEFAULTS)
    raise SpecError(file, key, f"{name} is not supported (supported: {supported})")


def _build(v: dict[str, Any], file: str) -> Preprocessing:
    flags = {
        flag: _bool(v, flag, file)
        for flag in ("do_convert_rgb", "default_to_square", *STEP_PARAMETERS)
    }
    square = v.get("default_to_square", True)
    size = _size(v, "size", file, square) if "size" in v else None
    resample = _resample(v, file)
    crop_size = _size(v, "crop_size", file, True) if "crop_size" in v else None
    crop_pct = _number(v, "crop_pct", file, upper=1.0) if "crop_pct" in v else None
    factor = _number(v, "rescale_factor", file) if "rescale_factor" in v else 1 / 255
    mean = _floats(v, "image_mean", file, positive=False) if "image_mean" in v else None
    std = _floats(v, "image_std", file, positive=True) if "image_std" in v else None

    resize = None
    if flags["do_resize"]:
        if size is None:
            raise SpecError(file, "size", "missing while do_resize is true")
        if crop_pct is not None and "shortest_edge" not in size:
            raise SpecError(file, "crop_pct", "needs size {shortest_edge}")
        resize = Resize(resample=resample, crop_pct=crop_pct, **size)
    crop = None
    if flags["do_center_crop"]:
        if crop_size is None:
            raise SpecError(file, "crop_size", "missing while do_center_crop is true")
        if "shortest_edge" in crop_size:
            raise SpecError(file, "crop_size", "must be {height, width}")
        crop = (crop_size["height"], crop_size["width"])
    if flags["do_normalize"]:
        for field, values in (("image_mean", mean), ("image_std", std)):
            if values is None:
                raise SpecError(file, field, "missing while do_normalize is true")
    else:
        mean = std = None
    return Preprocessing(
        resize=resize,
        center_crop=crop,
        rescale_factor=factor if flags["do_rescale"] else None,
        mean=mean,
        std=std,
    )


def _bool(v: dict[str, Any], field: str, file: str) -> bool:
    value = v.get(field, False)
    if not isinstance(value, bool):
        raise SpecError(file, field, f"must be true or false, got {json_repr(value)}")
    return value


def _side(value: Any, file: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIDE:
        problem = f"must be an integer from 1 to {MAX_SIDE}, got {json_repr(value)}"
        raise SpecError(file, field, problem)
    return value


def _size(v: dict[str, Any], field: str, file: str, square: bool) -> dict[str, int]:
    value = v[field]
    if isinstance(value, int) and not isinstance(value, bool):
        side = _side(value, file, field)
        return {"height": side, "width": side} if square else {"shortest_edge": side}
    if not isinstance(value, dict):
        raise SpecError(file, field, "must be an object {height, width} or {shortest_edge}")
    keys = {k for k, x in value.items() if x is not None}
    if keys not in ({"height", "width"}, {"shortest_edge"}):
        got = ", ".join(sorted(value)) or "no keys"
        problem = f"must have keys height and width, or shortest_edge; got {got}"
        raise SpecError(file, field, problem)
    return {k: _side(value[k], file, f"{field}.{k}") for k in sorted(keys)}


def _resample(v: dict[str, Any], file: str) -> int:
    value = v.get("resample", 2)  # transformers' base processor resizes bilinear
    if not isinstance(value, int) or isinstance(value, bool) or value not in RESAMPLE:
        codes = ", ".join(f"{code} {name}" for code, name in RESAMPLE.items())
        raise SpecError(file, "resample", f"must be a PIL code ({codes}), got {json_repr(value)}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(v: dict[str, Any], field: str, file: str, upper: float | None = None) -> float:
    value = v[field]
    if not _is_number(value) or value <= 0 or (upper is not None and value > upper):
        limit = f"in (0, {upper}]" if upper is not None else "positive"
        raise SpecError(file, field, f"must be a number {limit}, got {json_repr(value)}")
    return float(value)


def _floats(v: dict[str, Any], field: str, file: str, positive: bool) -> tuple[float, ...]:
    value = v[field]
    values = value if isinstance(value, list) else [value]
    what = "positive numbers" if positive else "numbers"
    if not values or not all(_is_number(x) and (x > 0 or not positive) for x in values):
        problem = f"must be a number or a list of {what}, got {json_repr(value)}"
        raise SpecError(file, field, problem)
    return tuple(float(x) for x in values)


def json_repr(value: Any) -> str:
    """A value as the JSON file spells it, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."

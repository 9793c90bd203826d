"""Open Inference Protocol JSON tensors <-> numpy, validated against the model's own specs."""

import math

import numpy as np

from app.errors import ApiError
from app.model import OIP_DATATYPES, TensorSpec


def decode_input(body: object, spec: TensorSpec, max_batch: int) -> np.ndarray:
    """One request input `{"name", "shape", "datatype", "data"}` as an array for `spec`."""
    if not isinstance(body, dict):
        raise ApiError(400, "each input must be an object with name, shape, datatype, data")
    name = body.get("name")
    datatype = body.get("datatype")
    shape = body.get("shape")
    if not isinstance(datatype, str) or datatype not in OIP_DATATYPES:
        raise ApiError(400, f"input {name!r}: unknown datatype {datatype!r}")
    if datatype != spec.datatype:
        raise ApiError(
            400, f"input {name!r}: datatype {datatype} but the model takes {spec.datatype}"
        )
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise ApiError(400, f"input {name!r}: shape must be a list of non-negative integers")
    check_shape(name, tuple(shape), spec, max_batch)
    return to_array(name, body.get("data"), tuple(shape), spec)


def check_shape(name: str, shape: tuple[int, ...], spec: TensorSpec, max_batch: int) -> None:
    if len(shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise ApiError(
            400,
            f"input {name!r}: shape {list(shape)} does not fit the model's "
            f"{list(spec.shape)} (-1 = any)",
        )
    if shape and shape[0] > max_batch:
        raise ApiError(400, f"input {name!r}: batch of {shape[0]} is over the maximum {max_batch}")


def decode_value(name: str, value: object, spec: TensorSpec, max_batch: int) -> np.ndarray:
    """A tensor in its natural nested form (TF Serving's rows stacked, or one of its
    columns): the shape is the data's own."""
    raw = _nested(name, value)
    check_shape(name, raw.shape, spec, max_batch)
    return _convert(name, raw, raw.shape, spec)


def to_array(name: str, data: object, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    """Flat or nested JSON numbers to an array of the spec's dtype; refuses anything else."""
    return _convert(name, _nested(name, data), shape, spec)


def _nested(name: str, data: object) -> np.ndarray:
    if not isinstance(data, list):
        raise ApiError(400, f"input {name!r}: data must be a list (flat or nested)")
    try:
        return np.asarray(data)
    except ValueError:
        raise ApiError(400, f"input {name!r}: nested data is ragged") from None


def _convert(name: str, raw: np.ndarray, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    kinds = "b" if spec.datatype == "BOOL" else ("iu" if spec.datatype[0] in "IU" else "iuf")
    if raw.size and raw.dtype.kind not in kinds:
        raise ApiError(400, f"input {name!r}: data must be {spec.datatype} values")
    if raw.size != math.prod(shape):
        raise ApiError(400, f"input {name!r}: {raw.size} values do not fill shape {list(shape)}")
    if raw.ndim > 1 and raw.shape != shape:
        raise ApiError(
            400, f"input {name!r}: nested data of shape {list(raw.shape)} is not {list(shape)}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        array = raw.astype(spec.dtype, copy=False).reshape(shape)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ApiError(
            400,
            f"input {name!r}: NaN, Infinity or numbers too large for "
            f"{spec.datatype} are not accepted",
        )
    if array.dtype.kind in "iu" and not np.array_equal(array, raw.reshape(shape)):
        raise ApiError(400, f"input {name!r}: values out of range for {spec.datatype}")
    return array


def encode_output(spec: TensorSpec, array: np.ndarray) -> dict:
    """One OIP response output, its data flat (row-major)."""
    return {
        "name": spec.name,
        "datatype": spec.datatype,
        "shape": list(array.shape),
        "data": json_data(array.ravel()),
    }


def json_data(array: np.ndarray) -> object:
    """The array's values as (nested) JSON lists. NaN and ±Infinity are null: JSON has no
    such numbers (RFC 8259), and null is what KServe writes for them; numpy, and so
    tritonclient's as_numpy, reads null back as NaN in a float array."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array, None)
    return array.tolist()


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

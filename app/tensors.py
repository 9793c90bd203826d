"""Open Inference Protocol tensors <-> numpy, validated against the model's own specs: JSON
data, or the bytes of the binary tensor data extension (app/protocols/binary.py).

BYTES tensors: JSON data are strings; through the binary extension, length-prefixed
elements. A model's string tensor holds text (onnxruntime takes str), so those elements must
be UTF-8. For an image model (model_spec.ImageInput), a BYTES input of shape [N] is N encoded
images instead: base64 strings in JSON (KServe's convention, standard alphabet with
padding), raw bytes through the binary extension; app/images.py turns them into the batch."""

import base64
import binascii
import math

import numpy as np

from app.errors import ApiError
from app.model import OIP_DATATYPES, TensorSpec
from app.protocols import binary


def decode_input(
    body: object, spec: TensorSpec, max_batch: int, raw: memoryview | None = None
) -> np.ndarray:
    """One request input `{"name", "shape", "datatype", "data"}` as an array for `spec`;
    `raw` is its binary data when it has `parameters.binary_data_size`."""
    name, shape = _header(body, spec.datatype)
    check_shape(name, shape, spec, max_batch)
    if raw is not None:
        if "data" in body:
            raise ApiError(400, f"input {name!r}: data and binary_data_size both given")
        array = binary.to_array(name, raw, spec.datatype, shape)
        return _text(name, array) if spec.datatype == "BYTES" else array
    if spec.datatype == "BYTES":
        return _strings(name, body.get("data"), shape)
    return to_array(name, body.get("data"), shape, spec)


def decode_images(body: object, max_batch: int, raw: memoryview | None) -> list[bytes]:
    """A BYTES input of shape [N]: N encoded images, base64 in JSON or raw when binary."""
    name, shape = _header(body, "BYTES")
    if len(shape) != 1 or not 0 < shape[0] <= max_batch:
        raise ApiError(
            400, f"input {name!r}: encoded images take shape [N], N from 1 to {max_batch}"
        )
    if raw is not None:
        if "data" in body:
            raise ApiError(400, f"input {name!r}: data and binary_data_size both given")
        return list(binary.bytes_elements(name, raw, shape[0]))
    return [  # numbered from 1, as app/images.py numbers them
        _base64(name, number, text)
        for number, text in enumerate(_strings(name, body.get("data"), shape), 1)
    ]


def _header(body: object, expected: str) -> tuple[str, tuple[int, ...]]:
    """An input's name and shape, once its datatype is the one expected."""
    if not isinstance(body, dict):
        raise ApiError(400, "each input must be an object with name, shape, datatype, data")
    name = body.get("name")
    datatype = body.get("datatype")
    shape = body.get("shape")
    if not isinstance(datatype, str) or datatype not in OIP_DATATYPES:
        raise ApiError(400, f"input {name!r}: unknown datatype {datatype!r}")
    if datatype != expected:
        raise ApiError(400, f"input {name!r}: datatype {datatype} but the model takes {expected}")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise ApiError(400, f"input {name!r}: shape must be a list of non-negative integers")
    return name, tuple(shape)


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
    if spec.datatype == "BYTES":
        raise ApiError(
            400, f"input {name!r}: a string (BYTES) input is taken by OIP infer only (/v2)"
        )
    kinds = "b" if spec.datatype == "BOOL" else ("iu" if spec.datatype[0] in "IU" else "iuf")
    if raw.size and raw.dtype.kind not in kinds:
        raise ApiError(400, f"input {name!r}: data must be {spec.datatype} values")
    _check_fill(name, raw, shape)
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


def _strings(name: str, data: object, shape: tuple[int, ...]) -> np.ndarray:
    """JSON BYTES data: strings, flat or nested to `shape`, as an object array of str."""
    if not isinstance(data, list):
        raise ApiError(400, f"input {name!r}: data must be a list (flat or nested)")
    try:
        raw = np.asarray(data, dtype=object)
    except ValueError:
        raise ApiError(400, f"input {name!r}: nested data is ragged") from None
    if not all(isinstance(value, str) for value in raw.flat):
        raise ApiError(400, f"input {name!r}: BYTES data must be strings, flat or nested")
    _check_fill(name, raw, shape)
    return raw.reshape(shape)


def _text(name: str, array: np.ndarray) -> np.ndarray:
    """Binary BYTES elements as the str a model's string tensor takes."""
    text = np.empty(array.shape, dtype=object)
    for index, element in enumerate(array.flat):
        try:
            text.flat[index] = element.decode()
        except UnicodeDecodeError:
            raise ApiError(
                400, f"input {name!r}: BYTES element {index} is not UTF-8 text"
            ) from None
    return text


def _base64(name: str, number: int, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"input {name!r}: image {number} is not base64") from None


def _check_fill(name: str, raw: np.ndarray, shape: tuple[int, ...]) -> None:
    if raw.size != math.prod(shape):
        raise ApiError(400, f"input {name!r}: {raw.size} values do not fill shape {list(shape)}")
    if raw.ndim > 1 and raw.shape != shape:
        raise ApiError(
            400, f"input {name!r}: nested data of shape {list(raw.shape)} is not {list(shape)}"
        )


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

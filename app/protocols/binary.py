"""The binary tensor data extension of the Open Inference Protocol (Triton's
`docs/protocol/extension_binary_data.md`; KServe's and Triton's clients speak it).

A body is the JSON inference object, its length in bytes in the Inference-Header-Content-Length
header, then the raw tensors of the inputs (or outputs) that carry
`parameters.binary_data_size`, in their JSON order, back to back. Numbers are little-endian,
row-major, without padding; a BOOL is one byte, 0 or 1; a BYTES element is a 4-byte
little-endian length, then that many bytes. Request tensors are read in place
(np.frombuffer on the body), copied only to align them as numpy aligns its own arrays.
"""

import math
import re
import struct

import numpy as np

from app.errors import ApiError
from app.model import OIP_DATATYPES

HEADER = "Inference-Header-Content-Length"
SIZE = "binary_data_size"  # an input's or output's byte count in the binary part
CONTENT_TYPE = "application/octet-stream"  # what Triton answers with binary outputs
_LENGTH = struct.Struct("<I")  # a BYTES element's length prefix
ALIGNMENT = 16  # bytes; what numpy's own allocations (JSON tensors) start on


def split(body: bytes, header: str | None) -> tuple[memoryview, memoryview | None]:
    """The JSON part of a request body and what follows it, per the header; without the
    header the whole body is JSON and there is no binary part (None)."""
    view = memoryview(body)
    if header is None:
        return view, None
    if not re.fullmatch(r"[0-9]{1,18}", header.strip()):
        raise ApiError(400, f"{HEADER} {header!r} is not a byte count")
    length = int(header)
    if length > len(view):
        raise ApiError(400, f"{HEADER} {length} is longer than the {len(view)}-byte body")
    return view[:length], view[length:]


def take(sizes: list[tuple[str, int]], data: memoryview | None) -> dict[str, memoryview]:
    """Each input's bytes, by name, cut from the binary part in order: the sizes must add
    up to the binary part exactly."""
    if data is None:
        if sizes:
            raise ApiError(
                400,
                f"input {sizes[0][0]!r} has parameters.{SIZE} but the request has no "
                f"{HEADER} header, so no binary data",
            )
        return {}
    total = sum(size for _, size in sizes)
    if total != len(data):
        raise ApiError(
            400,
            f"the inputs' {SIZE} add up to {total} bytes but {len(data)} bytes follow "
            f"the JSON part ({HEADER})",
        )
    chunks, offset = {}, 0
    for name, size in sizes:
        chunks[name] = data[offset : offset + size]
        offset += size
    return chunks


def to_array(name: str, raw: memoryview, datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An input's bytes as an array of `shape`: numbers read in place, BYTES elements as an
    object array of bytes."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return bytes_elements(name, raw, count).reshape(shape)
    dtype = np.dtype(OIP_DATATYPES[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise ApiError(
            400,
            f"input {name!r}: {SIZE} {len(raw)} is not the {count * dtype.itemsize} bytes "
            f"of {count} {datatype} values (shape {list(shape)})",
        )
    if datatype == "BOOL" and np.frombuffer(raw, np.uint8).max(initial=0) > 1:
        raise ApiError(400, f"input {name!r}: a BOOL byte must be 0 or 1")
    array = np.frombuffer(raw, dtype).reshape(shape)
    if array.ctypes.data % ALIGNMENT:
        # onnxruntime's kernels sum data that doesn't start on a 16-byte boundary in another
        # order: the same tensor would get another answer by where the JSON part ended.
        return array.copy()
    return array


def bytes_elements(name: str, raw: memoryview, count: int) -> np.ndarray:
    """`count` length-prefixed BYTES elements filling `raw` exactly, as a flat object
    array of bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if len(raw) - offset < _LENGTH.size:
            raise ApiError(
                400, f"input {name!r}: BYTES element {len(elements)}'s 4-byte length is cut short"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > len(raw) - offset:
            raise ApiError(
                400,
                f"input {name!r}: BYTES element {len(elements)} says {length} bytes but "
                f"only {len(raw) - offset} are left",
            )
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise ApiError(
            400, f"input {name!r}: {len(elements)} BYTES elements where the shape holds {count}"
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array


def from_array(array: np.ndarray) -> bytes | memoryview:
    """A tensor's binary form: numbers little-endian row-major (no copy when the array is
    already so); text or bytes elements length-prefixed, text as UTF-8."""
    if array.dtype == object:
        parts = []
        for element in array.ravel():
            data = element.encode() if isinstance(element, str) else bytes(element)
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    little = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    return little.reshape(-1).view(np.uint8).data


def body(json_part: bytes, tensors: list[bytes | memoryview]) -> bytes:
    """A response body: the JSON part, then each binary output in order."""
    return b"".join([json_part, *tensors])

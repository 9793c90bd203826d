"""The binary tensor data extension's wire format in-process (app/protocols/binary.py): every
datatype round-trips, tensors are read in place, and each inconsistency is a 400 naming it.
The HTTP tests (test_binary_http.py, test_tritonclient_binary.py) prove it with real clients."""

import struct

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

from app.errors import ApiError
from app.protocols import binary

NUMERIC = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[-1.5, np.pi, 3.4e38]], dtype=np.float32),
    "FP64": np.array([[-1.5, np.e, 1e308]], dtype=np.float64),
}


def refused(call, *args) -> str:
    with pytest.raises(ApiError) as error:
        call(*args)
    assert error.value.status == 400
    return error.value.message


def elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_each_numeric_datatype_round_trips_little_endian(datatype):
    array = NUMERIC[datatype]
    raw = bytes(binary.from_array(array))

    decoded = binary.to_array("x", memoryview(raw), datatype, array.shape)

    assert raw == array.astype(array.dtype.newbyteorder("<")).tobytes()
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_a_big_endian_array_is_sent_little_endian():
    assert bytes(binary.from_array(np.array([1], dtype=">u2"))) == b"\x01\x00"


def aligned_body(offset: int, tensor: np.ndarray) -> memoryview:
    """A body whose tensor starts `offset` bytes past a 64-byte boundary."""
    buffer = np.zeros(tensor.nbytes + 128, np.uint8)
    start = -buffer.ctypes.data % 64 + offset
    buffer[start : start + tensor.nbytes] = np.frombuffer(tensor.tobytes(), np.uint8)
    return memoryview(buffer)[start : start + tensor.nbytes]


@pytest.mark.parametrize("offset", [0, 16, 48])
def test_an_aligned_tensor_is_read_in_place_from_the_body(offset):
    tensor = np.arange(6, dtype=np.float32)
    raw = aligned_body(offset, tensor)

    array = binary.to_array("x", raw, "FP32", (2, 3))

    assert np.shares_memory(array, np.frombuffer(raw, np.uint8))
    np.testing.assert_array_equal(array, tensor.reshape(2, 3))


@pytest.mark.parametrize("offset", [1, 4, 8, 12])
def test_an_unaligned_tensor_is_copied_to_where_numpy_would_put_it(offset):
    tensor = np.arange(6, dtype=np.float32)

    array = binary.to_array("x", aligned_body(offset, tensor), "FP32", (2, 3))

    assert array.ctypes.data % 16 == 0
    np.testing.assert_array_equal(array, tensor.reshape(2, 3))


def test_onnxruntime_answers_the_same_wherever_the_json_part_ends():
    """Its reductions take another path over data off a 16-byte boundary: unaligned, a mean
    over 224x224 floats came out different in the sixth digit."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "mean",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString())
    tensor = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    (expected,) = session.run(None, {"x": tensor})

    for offset in range(0, 64, 4):
        array = binary.to_array("x", aligned_body(offset, tensor), "FP32", tensor.shape)
        np.testing.assert_array_equal(session.run(None, {"x": array})[0], expected)


@pytest.mark.parametrize(("datatype", "shape"), [("FP32", (0, 64)), ("BYTES", (0,))])
def test_an_empty_tensor_is_zero_bytes_both_ways(datatype, shape):
    array = binary.to_array("x", memoryview(b""), datatype, shape)

    assert array.shape == shape
    assert bytes(binary.from_array(array)) == b""


def test_bytes_elements_round_trip_with_empty_ones_and_any_byte():
    items = [b"", b"abc", b"\x00\xff", "é".encode(), b""]
    raw = elements(*items)

    decoded = binary.to_array("x", memoryview(raw), "BYTES", (5,))

    assert decoded.dtype == object and list(decoded) == items
    assert bytes(binary.from_array(decoded)) == raw


def test_text_elements_are_sent_as_utf8():
    text = np.array([["a", "é"], ["", "z"]], dtype=object)

    assert bytes(binary.from_array(text)) == elements(b"a", "é".encode(), b"", b"z")


def test_a_transposed_array_is_sent_row_major():
    array = np.arange(6, dtype=np.int32).reshape(2, 3).T

    assert bytes(binary.from_array(array)) == np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("abc", "Inference-Header-Content-Length 'abc' is not a byte count"),
        ("-1", "is not a byte count"),
        ("1.5", "is not a byte count"),
        ("", "is not a byte count"),
        ("9" * 40, "is not a byte count"),
        ("11", "Inference-Header-Content-Length 11 is longer than the 10-byte body"),
    ],
)
def test_a_header_that_is_not_a_length_within_the_body_is_refused(header, says):
    assert says in refused(binary.split, b"0123456789", header)


def test_without_the_header_the_whole_body_is_json():
    json_part, rest = binary.split(b'{"a": 1}', None)

    assert bytes(json_part) == b'{"a": 1}' and rest is None


def test_sizes_cut_the_binary_part_in_order():
    chunks = binary.take([("a", 2), ("b", 0), ("c", 3)], memoryview(b"AABBB"))

    assert {name: bytes(chunk) for name, chunk in chunks.items()} == {
        "a": b"AA",
        "b": b"",
        "c": b"BBB",
    }


@pytest.mark.parametrize(
    ("sizes", "data", "says"),
    [
        ([("a", 4)], b"abc", "the inputs' binary_data_size add up to 4 bytes but 3 bytes follow"),
        ([("a", 2)], b"abc", "add up to 2 bytes but 3 bytes follow"),
        ([], b"abc", "add up to 0 bytes but 3 bytes follow"),
        ([("a", 2)], None, "input 'a' has parameters.binary_data_size but the request has no"),
    ],
)
def test_sizes_that_do_not_add_up_to_the_binary_part_are_refused(sizes, data, says):
    assert says in refused(binary.take, sizes, None if data is None else memoryview(data))


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "says"),
    [
        ("FP32", (1, 3), b"\x00" * 8, "binary_data_size 8 is not the 12 bytes of 3 FP32 values"),
        ("FP16", (2,), b"\x00" * 5, "binary_data_size 5 is not the 4 bytes of 2 FP16 values"),
        ("BOOL", (2,), b"\x01\x02", "a BOOL byte must be 0 or 1"),
        ("BYTES", (2,), elements(b"a"), "1 BYTES elements where the shape holds 2"),
        ("BYTES", (1,), elements(b"a", b"b"), "2 BYTES elements where the shape holds 1"),
        ("BYTES", (1,), b"\x04\x00\x00\x00abc", "BYTES element 0 says 4 bytes but only 3"),
        ("BYTES", (2,), elements(b"a") + b"\x01\x00", "element 1's 4-byte length is cut short"),
    ],
)
def test_data_that_does_not_fit_shape_and_datatype_is_refused(datatype, shape, raw, says):
    message = refused(binary.to_array, "x", memoryview(raw), datatype, shape)

    assert message.startswith("input 'x': ") and says in message

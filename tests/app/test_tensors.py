"""JSON tensors in-process, against specs of every kind (the sample model takes FP32 only):
each datatype's values and limits, shapes by rank, size and batch, and the 400 that names
what is wrong. The routes' tests prove the same through HTTP for the sample model."""

import base64

import numpy as np
import pytest

from app.errors import ApiError
from app.model import TensorSpec
from app.tensors import decode_images, decode_input, decode_value, encode_output, json_data

FP32 = TensorSpec("x", "FP32", (-1, 2))
INT8 = TensorSpec("x", "INT8", (-1, 2))
UINT8 = TensorSpec("x", "UINT8", (-1, 2))
BOOL = TensorSpec("x", "BOOL", (-1, 2))
FIXED = TensorSpec("x", "FP32", (2, 3))
TEXT = TensorSpec("x", "BYTES", (-1,))
TEXT_2D = TensorSpec("x", "BYTES", (-1, 2))


def item(datatype: str, shape: object, data: object, name: str = "x") -> dict:
    """A request input; data None: none, as an input with binary data has."""
    body = {"name": name, "datatype": datatype, "shape": shape}
    return body if data is None else body | {"data": data}


def refused(call, *args) -> str:
    with pytest.raises(ApiError) as error:
        call(*args)
    assert error.value.status == 400
    return error.value.message


@pytest.mark.parametrize(
    ("spec", "data", "expected"),
    [
        (FP32, [1, 2.5, -3, 4], np.array([[1, 2.5], [-3, 4]], dtype=np.float32)),
        (INT8, [-128, 127, 0, 1], np.array([[-128, 127], [0, 1]], dtype=np.int8)),
        (UINT8, [0, 255, 1, 2], np.array([[0, 255], [1, 2]], dtype=np.uint8)),
        (BOOL, [True, False, False, True], np.array([[True, False], [False, True]])),
    ],
    ids=["FP32", "INT8", "UINT8", "BOOL"],
)
def test_each_datatype_decodes_flat_or_nested_data_to_its_dtype(spec, data, expected):
    flat = decode_input(item(spec.datatype, [2, 2], data), spec, max_batch=8)
    nested = decode_input(item(spec.datatype, [2, 2], [data[:2], data[2:]]), spec, max_batch=8)

    for array in (flat, nested):
        assert array.dtype == expected.dtype and array.shape == (2, 2)
        np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize(
    ("spec", "data", "says"),
    [
        (INT8, [1.5, 2, 3, 4], "data must be INT8 values"),
        (INT8, [128, 0, 0, 0], "values out of range for INT8"),
        (UINT8, [-1, 0, 0, 0], "values out of range for UINT8"),
        (BOOL, [1, 0, 1, 0], "data must be BOOL values"),
        (FP32, [True, False, True, False], "data must be FP32 values"),
        (FP32, [1e39, 0, 0, 0], "NaN, Infinity or numbers too large for FP32"),
        (FP32, ["1", "2", "3", "4"], "data must be FP32 values"),
    ],
)
def test_values_the_datatype_cannot_hold_are_refused(spec, data, says):
    message = refused(decode_input, item(spec.datatype, [2, 2], data), spec, 8)

    assert message.startswith("input 'x': ") and says in message


@pytest.mark.parametrize(
    ("shape", "data", "says"),
    [
        ([2], [1, 2], "shape [2] does not fit the model's [2, 3]"),
        ([2, 3, 1], [0] * 6, "shape [2, 3, 1] does not fit"),
        ([2, 2], [0] * 4, "shape [2, 2] does not fit"),
        ([3, 3], [0] * 9, "shape [3, 3] does not fit"),
        ([2, 3], [0] * 5, "5 values do not fill shape [2, 3]"),
        ([2, 3], [0] * 7, "7 values do not fill shape [2, 3]"),
        ([2, 3], [[0, 0], [0, 0], [0, 0]], "nested data of shape [3, 2] is not [2, 3]"),
        ([2, 3], [[0, 0, 0], [0, 0]], "nested data is ragged"),
        ([2, 3], 7, "data must be a list"),
        ([2, -3], [0] * 6, "shape must be a list of non-negative integers"),
        ([2, True], [0] * 6, "shape must be a list of non-negative integers"),
        ("2,3", [0] * 6, "shape must be a list of non-negative integers"),
    ],
)
def test_shapes_and_data_that_do_not_fit_are_refused_naming_both(shape, data, says):
    message = refused(decode_input, item("FP32", shape, data), FIXED, 8)

    assert says in message


def test_a_batch_of_the_maximum_is_taken_and_one_more_refused():
    taken = decode_input(item("FP32", [4, 2], [0] * 8), FP32, max_batch=4)

    assert taken.shape == (4, 2)
    message = refused(decode_input, item("FP32", [5, 2], [0] * 10), FP32, 4)
    assert message == "input 'x': batch of 5 is over the maximum 4"


@pytest.mark.parametrize(
    ("datatype", "says"),
    [
        ("FP64", "datatype FP64 but the model takes FP32"),
        ("FP16", "datatype FP16 but the model takes FP32"),
        ("FLOAT", "unknown datatype 'FLOAT'"),
        (5, "unknown datatype 5"),
        (None, "unknown datatype None"),
    ],
)
def test_a_datatype_other_than_the_models_is_refused(datatype, says):
    assert says in refused(decode_input, item(datatype, [1, 2], [0, 0]), FP32, 8)


def test_an_input_that_is_not_an_object_is_refused():
    assert "each input must be an object" in refused(decode_input, ["x"], FP32, 8)


def test_a_natural_value_takes_its_shape_from_the_data():
    array = decode_value("x", [[1, 2], [3, 4], [5, 6]], FP32, max_batch=8)

    assert array.shape == (3, 2) and array.dtype == np.float32
    assert "batch of 3 is over the maximum 2" in refused(decode_value, "x", [[1, 2]] * 3, FP32, 2)


def test_outputs_are_flat_row_major_with_their_shape_and_non_finite_values_null():
    spec = TensorSpec("y", "FP32", (-1, 2))
    array = np.array([[1.5, np.nan], [np.inf, -2.0]], dtype=np.float32)

    assert encode_output(spec, array) == {
        "name": "y",
        "datatype": "FP32",
        "shape": [2, 2],
        "data": [1.5, None, None, -2.0],
    }
    assert json_data(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]


def test_an_empty_batch_decodes_to_no_rows():
    array = decode_input(item("FP32", [0, 2], []), FP32, max_batch=8)

    assert array.shape == (0, 2) and array.dtype == np.float32


@pytest.mark.parametrize(
    ("shape", "data", "says"),
    [
        ([3, 2], [[0, 0, 0], [0, 0, 0]], "nested data of shape [2, 3] is not [3, 2]"),
        ([-1, 2], [0, 0], "shape must be a list of non-negative integers"),
    ],
)
def test_a_dynamic_dimension_takes_neither_a_transposed_nesting_nor_minus_one(shape, data, says):
    assert says in refused(decode_input, item("FP32", shape, data), FP32, 8)


def elements(*items: bytes) -> memoryview:
    """BYTES elements as the binary extension sends them."""
    return memoryview(b"".join(len(item).to_bytes(4, "little") + item for item in items))


def test_bytes_data_in_json_are_strings_flat_or_nested_decoded_as_text():
    flat = decode_input(item("BYTES", [2, 2], ["a", "", "é", "z"]), TEXT_2D, 8)
    nested = decode_input(item("BYTES", [2, 2], [["a", ""], ["é", "z"]]), TEXT_2D, 8)

    for array in (flat, nested):
        assert array.dtype == object and array.shape == (2, 2)
        assert array.tolist() == [["a", ""], ["é", "z"]]


def test_binary_bytes_elements_are_decoded_as_the_text_a_string_input_takes():
    array = decode_input(item("BYTES", [3], None), TEXT, 8, elements(b"a", b"", "é".encode()))

    assert array.tolist() == ["a", "", "é"]


def test_a_binary_input_is_read_in_place():
    raw = memoryview(np.arange(4, dtype=np.float32)).cast("B")  # aligned as numpy aligns
    body = {"name": "x", "datatype": "FP32", "shape": [2, 2]}

    array = decode_input(body, FP32, 8, raw)

    assert np.shares_memory(array, np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize(
    ("shape", "data", "raw", "says"),
    [
        ([2], ["a", 1], None, "BYTES data must be strings"),
        ([2], [b"a".hex(), None], None, "BYTES data must be strings"),
        ([2], [["a"], "b"], None, "BYTES data must be strings"),
        ([3], ["a", "b"], None, "2 values do not fill shape [3]"),
        ([1], "a", None, "data must be a list"),
        ([1], None, elements(b"\xff"), "BYTES element 0 is not UTF-8 text"),
        ([1], ["a"], elements(b"a"), "data and binary_data_size both given"),
        ([9], None, elements(b"a"), "batch of 9 is over the maximum 8"),
    ],
)
def test_bytes_inputs_that_are_not_text_filling_the_shape_are_refused(shape, data, raw, says):
    body = item("BYTES", shape, data)

    assert says in refused(decode_input, body, TEXT, 8, raw)


def test_images_are_base64_strings_in_json_and_raw_bytes_when_binary():
    png, jpeg = b"\x89PNG\r\n", b"\xff\xd8\xff"
    encoded = [base64.b64encode(png).decode(), base64.b64encode(jpeg).decode()]

    assert decode_images(item("BYTES", [2], encoded), 8, None) == [png, jpeg]
    assert decode_images(item("BYTES", [2], None), 8, elements(png, jpeg)) == [png, jpeg]


@pytest.mark.parametrize(
    ("shape", "data", "says"),
    [
        ([1], ["AAAA!"], "image 1 is not base64"),
        ([2], ["AAAA", "AAA"], "image 2 is not base64"),
        ([1, 1], [["AAAA"]], "encoded images take shape [N], N from 1 to 8"),
        ([0], [], "encoded images take shape [N], N from 1 to 8"),
        ([9], ["AAAA"] * 9, "encoded images take shape [N], N from 1 to 8"),
        ([2], ["AAAA"], "1 values do not fill shape [2]"),
    ],
)
def test_image_inputs_that_are_not_a_batch_of_base64_are_refused(shape, data, says):
    assert says in refused(decode_images, item("BYTES", shape, data), 8, None)


def test_a_string_input_in_tf_servings_rows_points_to_oip():
    message = refused(decode_value, "x", ["a", "b"], TEXT, 8)

    assert message == "input 'x': a string (BYTES) input is taken by OIP infer only (/v2)"

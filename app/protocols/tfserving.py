"""TF Serving's REST predict API, which KServe v1 speaks: rows ("instances") or columns
("inputs") in; "predictions" (rows) or "outputs" (columns) out, every output of the model.

Rows: each instance is the sole input's value, or an object naming every input. Columns:
the sole input's tensor, or an object of tensors by input name. A model with one output is
answered with its values alone; with several, each row (or the columns object) carries every
output by name. Tensors are nested JSON in their natural shape (app/tensors.py)."""

from dataclasses import dataclass

import numpy as np

from app.errors import ApiError
from app.model import Model, TensorSpec
from app.protocols import Inference, check_input_names
from app.tensors import decode_value, json_data

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class PredictRequest(Inference):
    columnar: bool = False


def decode(body: object, model: Model, max_batch: int) -> PredictRequest:
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be an object with "instances" or "inputs"')
    signature = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str):
        raise ApiError(400, "signature_name must be a string")
    if signature != DEFAULT_SIGNATURE:
        raise ApiError(
            400, f"signature {signature!r} is not served; the model has {DEFAULT_SIGNATURE!r} only"
        )
    if ("instances" in body) == ("inputs" in body):
        raise ApiError(
            400, 'the body must have either "instances" (rows) or "inputs" (columns), not both'
        )
    if "inputs" in body:
        return PredictRequest(model, columns(body["inputs"], model, max_batch), model.outputs, True)
    return PredictRequest(model, rows(body["instances"], model, max_batch), model.outputs)


def rows(instances: object, model: Model, max_batch: int) -> dict[str, np.ndarray]:
    """The row format's inputs: one entry per instance, all sharing the first dimension."""
    if not isinstance(instances, list) or not instances:
        raise ApiError(400, '"instances" must be a non-empty list')
    objects = [isinstance(instance, dict) for instance in instances]
    if not any(objects):
        spec = _sole_input(model)
        return {spec.name: decode_value(spec.name, instances, spec, max_batch)}
    if not all(objects):
        raise ApiError(400, "instances: either every instance an object naming the inputs, or none")
    for instance in instances:
        check_input_names(instance, model)
    return {
        spec.name: decode_value(spec.name, [row[spec.name] for row in instances], spec, max_batch)
        for spec in model.inputs
    }


def columns(inputs: object, model: Model, max_batch: int) -> dict[str, np.ndarray]:
    """The columnar format's inputs: each its own tensor, first dimensions free."""
    if not isinstance(inputs, dict):
        spec = _sole_input(model)
        return {spec.name: decode_value(spec.name, inputs, spec, max_batch)}
    check_input_names(inputs, model)
    return {
        spec.name: decode_value(spec.name, inputs[spec.name], spec, max_batch)
        for spec in model.inputs
    }


def encode(inference: PredictRequest, results: list[np.ndarray]) -> dict:
    values = {spec.name: array for spec, array in zip(inference.outputs, results, strict=True)}
    key = "outputs" if inference.columnar else "predictions"
    if len(values) == 1:
        (array,) = values.values()
        return {key: json_data(array)}
    if inference.columnar:
        return {key: {name: json_data(array) for name, array in values.items()}}
    firsts = {array.shape[:1] for array in values.values()}
    if len(firsts) != 1 or firsts == {()}:
        raise ApiError(
            400,
            "the model's outputs differ in their first dimension, so they can't be split into "
            'rows; send the columnar format ("inputs") to get them as "outputs"',
        )
    by_name = {name: json_data(array) for name, array in values.items()}
    return {
        key: [dict(zip(by_name, row, strict=True)) for row in zip(*by_name.values(), strict=True)]
    }


def _sole_input(model: Model) -> TensorSpec:
    if len(model.inputs) != 1:
        names = [spec.name for spec in model.inputs]
        raise ApiError(
            400, f"the model takes {len(names)} inputs {names}: send an object that names them"
        )
    return model.inputs[0]

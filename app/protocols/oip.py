"""Open Inference Protocol (KServe v2) REST: the inference request object in, the inference
response object out, JSON tensors both ways."""

from dataclasses import dataclass

import numpy as np

from app.errors import ApiError
from app.model import Model, TensorSpec
from app.protocols import Inference, check_input_names
from app.tensors import decode_input, encode_output

# Parameters that ask for one of Triton's extensions, which this server doesn't have (its
# server metadata lists none): a 400, never ignored, so no client gets an answer in a form
# it didn't ask for. Binary tensor data comes with image models.
EXTENSION_PARAMETERS = {
    "binary_data_output": "binary tensor data",
    "binary_data": "binary tensor data",
    "binary_data_size": "binary tensor data",
    "classification": "classification",
    "shared_memory_region": "shared memory",
    "shared_memory_byte_size": "shared memory",
    "shared_memory_offset": "shared memory",
}
# Triton's schedule policy: whole numbers, checked and accepted. There is no queue here to
# order or expire: a request runs as soon as a worker thread takes it.
SCHEDULE_PARAMETERS = ("priority", "timeout")


@dataclass(frozen=True)
class InferRequest(Inference):
    id: str | None = None


def decode(body: object, model: Model, max_batch: int) -> InferRequest:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ApiError(400, 'the body must be an object with an "inputs" list')
    if not isinstance(body.get("id", ""), str):
        raise ApiError(400, '"id" must be a string')
    _check_parameters(body, "request")
    items = _named(body["inputs"], "input")
    check_input_names(items, model)
    inputs = {}
    for spec in model.inputs:
        item = items[spec.name]
        _check_parameters(item, f"input {spec.name!r}")
        inputs[spec.name] = decode_input(item, spec, max_batch)
    return InferRequest(
        model, inputs, _requested_outputs(body.get("outputs"), model), body.get("id")
    )


def encode(inference: InferRequest, results: list[np.ndarray]) -> dict:
    model = inference.model
    response = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [
            encode_output(spec, array)
            for spec, array in zip(inference.outputs, results, strict=True)
        ],
    }
    if inference.id is not None:
        response["id"] = inference.id
    return response


def _requested_outputs(requested: object, model: Model) -> tuple[TensorSpec, ...]:
    """The outputs named, in their order; none (absent, null or []) is every output, as the
    protocol's default (Triton reads an empty list the same way)."""
    if requested is None:
        requested = []
    if not isinstance(requested, list):
        raise ApiError(400, '"outputs" must be a list of {"name": ...}')
    by_name = {spec.name: spec for spec in model.outputs}
    chosen = []
    for name, item in _named(requested, "output").items():
        if name not in by_name:
            raise ApiError(400, f"unknown output {name!r}; the model has {sorted(by_name)}")
        _check_parameters(item, f"output {name!r}")
        chosen.append(by_name[name])
    return tuple(chosen) or model.outputs


def _named(items: list, kind: str) -> dict[str, dict]:
    """Each item of an "inputs" or "outputs" list by its name: an object with a string
    "name", no name twice."""
    named = {}
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise ApiError(400, f'each {kind} must be an object with a string "name"')
        if name in named:
            raise ApiError(400, f"{kind} {name!r} given twice")
        named[name] = item
    return named


def _check_parameters(item: dict, where: str) -> None:
    """An object's optional "parameters": an object of string, number or boolean values
    (the protocol's $parameters); unknown ones are ignored, as the protocol allows."""
    parameters = item.get("parameters")
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise ApiError(400, f"{where} parameters must be an object")
    for key, value in parameters.items():
        if not isinstance(value, str | int | float):
            raise ApiError(400, f"{where} parameter {key!r} must be a string, number or boolean")
        if key in EXTENSION_PARAMETERS and value not in (False, 0):
            raise ApiError(
                400,
                f"{where} parameter {key!r}: Triton's {EXTENSION_PARAMETERS[key]} extension "
                "is not supported (the server metadata lists the extensions there are)",
            )
        if key in SCHEDULE_PARAMETERS and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ApiError(400, f"{where} parameter {key!r} must be a whole number, 0 or more")

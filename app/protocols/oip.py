"""Open Inference Protocol (KServe v2) REST: the inference request object in, the inference
response object out; tensors as JSON, or as binary data after the JSON where the request
says so (app/protocols/binary.py)."""

from dataclasses import dataclass

import numpy as np

from app.errors import ApiError
from app.images import to_batch
from app.model import Model, TensorSpec
from app.protocols import Inference, binary, check_input_names
from app.tensors import decode_images, decode_input, encode_output

# Parameters that ask for one of Triton's extensions this server doesn't have (its server
# metadata lists the one it has, binary tensor data): a 400, never ignored, so no client gets
# an answer in a form it didn't ask for.
EXTENSION_PARAMETERS = {
    "classification": "classification",
    "shared_memory_region": "shared memory",
    "shared_memory_byte_size": "shared memory",
    "shared_memory_offset": "shared memory",
}
EXTENSIONS = ["binary_tensor_data"]  # the server metadata's list
# The binary tensor data extension's switches, true or false (Triton's are bool parameters).
BINARY_SWITCHES = ("binary_data", "binary_data_output")
# Triton's schedule policy: whole numbers, checked and accepted. There is no queue here to
# order or expire: a request runs as soon as a worker thread takes it.
SCHEDULE_PARAMETERS = ("priority", "timeout")


@dataclass(frozen=True)
class InferRequest(Inference):
    id: str | None = None
    binary_outputs: frozenset[str] = frozenset()  # outputs answered as binary data


def decode(
    body: object,
    model: Model,
    max_batch: int,
    *,
    binary_part: memoryview | None,
    max_image_pixels: int,
) -> InferRequest:
    """`binary_part` is what followed the JSON part (None without the binary extension's
    header); `max_image_pixels` bounds each encoded image an image model is sent."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ApiError(400, 'the body must be an object with an "inputs" list')
    if not isinstance(body.get("id", ""), str):
        raise ApiError(400, '"id" must be a string')
    _check_parameters(body, "request")
    items = _named(body["inputs"], "input")
    check_input_names(items, model)
    for name, item in items.items():
        _check_parameters(item, f"input {name!r}")
    chunks = binary.take(
        [(name, item["parameters"][binary.SIZE]) for name, item in items.items() if _sized(item)],
        binary_part,
    )
    inputs = {}
    for spec in model.inputs:
        item, raw = items[spec.name], chunks.get(spec.name)
        if model.image_input is not None and item.get("datatype") == "BYTES":
            images = decode_images(item, max_batch, raw)
            inputs[spec.name] = to_batch(images, model.image_input, spec.dtype, max_image_pixels)
        else:
            inputs[spec.name] = decode_input(item, spec, max_batch, raw)
    outputs, binary_outputs = _requested_outputs(body, model)
    return InferRequest(model, inputs, outputs, body.get("id"), binary_outputs)


def encode(inference: InferRequest, results: list[np.ndarray]) -> tuple[dict, list]:
    """The response object and the binary data of the outputs it says are binary, in order."""
    model = inference.model
    outputs, tensors = [], []
    for spec, array in zip(inference.outputs, results, strict=True):
        if spec.name in inference.binary_outputs:
            tensor = binary.from_array(array)
            tensors.append(tensor)
            outputs.append(
                {
                    "name": spec.name,
                    "datatype": spec.datatype,
                    "shape": list(array.shape),
                    "parameters": {binary.SIZE: len(tensor)},
                }
            )
        else:
            outputs.append(encode_output(spec, array))
    response = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if inference.id is not None:
        response["id"] = inference.id
    return response, tensors


def _sized(item: dict) -> bool:
    return binary.SIZE in (item.get("parameters") or {})


def _requested_outputs(body: dict, model: Model) -> tuple[tuple[TensorSpec, ...], frozenset]:
    """The outputs named, in their order, and those to answer as binary data; none named
    (absent, null or []) is every output, as the protocol's default (Triton reads an empty
    list the same way). An output's binary_data overrides the request's binary_data_output."""
    requested = body.get("outputs")
    if requested is None:
        requested = []
    if not isinstance(requested, list):
        raise ApiError(400, '"outputs" must be a list of {"name": ...}')
    every = (body.get("parameters") or {}).get("binary_data_output", False)
    by_name = {spec.name: spec for spec in model.outputs}
    chosen, binary_outputs = [], set()
    for name, item in _named(requested, "output").items():
        if name not in by_name:
            raise ApiError(400, f"unknown output {name!r}; the model has {sorted(by_name)}")
        _check_parameters(item, f"output {name!r}")
        chosen.append(by_name[name])
        if (item.get("parameters") or {}).get("binary_data", every):
            binary_outputs.add(name)
    if not chosen:
        chosen = list(model.outputs)
        binary_outputs = {spec.name for spec in chosen} if every else set()
    return tuple(chosen), frozenset(binary_outputs)


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
        if key in BINARY_SWITCHES and not isinstance(value, bool):
            raise ApiError(400, f"{where} parameter {key!r} must be true or false")
        if key in (*SCHEDULE_PARAMETERS, binary.SIZE) and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ApiError(400, f"{where} parameter {key!r} must be a whole number, 0 or more")

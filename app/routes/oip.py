"""Open Inference Protocol (KServe v2) REST: server and model metadata, readiness, infer."""

import time

from flask import Blueprint, jsonify

from app import __version__
from app.errors import ApiError
from app.model import Model, TensorSpec
from app.requests import json_body
from app.service import service
from app.tensors import decode_input, encode_output

bp = Blueprint("oip", __name__, url_prefix="/v2")


@bp.get("")
def server_metadata():
    return jsonify(name="ai-app", version=__version__, extensions=[])


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    model = service().require_model(name, version)
    return jsonify(
        name=model.name,
        versions=[model.version],
        platform=model.platform,
        inputs=[spec.as_metadata() for spec in model.inputs],
        outputs=[spec.as_metadata() for spec in model.outputs],
    )


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    svc = service()
    try:
        svc.require_model(name, version)
    except ApiError as error:
        if error.status != 503:
            raise
    return jsonify(name=name, ready=svc.ready), 200 if svc.ready else 503


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    svc = service()
    model = svc.require_model(name, version)
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ApiError(400, 'the body must be an object with an "inputs" list')
    if not isinstance(body.get("id", ""), str):
        raise ApiError(400, '"id" must be a string')
    if _parameters(body, "request").get("binary_data_output"):
        raise ApiError(400, BINARY_UNSUPPORTED)
    specs = {spec.name: spec for spec in model.inputs}
    arrays = {}
    for item_name, item in _named(body["inputs"], "input"):
        if item_name not in specs:
            raise ApiError(400, f"unknown input {item_name!r}; the model takes {sorted(specs)}")
        arrays[item_name] = decode_input(item, specs[item_name], svc.config.max_batch_size)
    if missing := set(specs) - set(arrays):
        raise ApiError(400, f"missing inputs {sorted(missing)}")
    outputs = _requested_outputs(body.get("outputs"), model)

    started = time.perf_counter()
    results = model.predict(arrays, [spec.name for spec in outputs])
    svc.metrics.inference_seconds.observe(time.perf_counter() - started)
    first = next(iter(arrays.values()))
    svc.metrics.batch_size.observe(first.shape[0] if first.ndim else 1)

    response = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [
            encode_output(spec, array) for spec, array in zip(outputs, results, strict=True)
        ],
    }
    if "id" in body:
        response["id"] = body["id"]
    return jsonify(response)


BINARY_UNSUPPORTED = (
    "the binary tensor data extension is not supported; request JSON outputs (binary_data: false)"
)


def _requested_outputs(requested: object, model: Model) -> list[TensorSpec]:
    """The outputs named, in their order; none (absent, null or []) is every output, as the
    protocol's default (Triton reads an empty list the same way)."""
    if requested is None:
        requested = []
    if not isinstance(requested, list):
        raise ApiError(400, '"outputs" must be a list of {"name": ...}')
    by_name = {spec.name: spec for spec in model.outputs}
    chosen = []
    for item_name, item in _named(requested, "output"):
        if item_name not in by_name:
            raise ApiError(400, f"unknown output {item_name!r}; the model has {sorted(by_name)}")
        if _parameters(item, f"output {item_name!r}").get("binary_data"):
            raise ApiError(400, BINARY_UNSUPPORTED)
        chosen.append(by_name[item_name])
    return chosen or list(model.outputs)


def _named(items: list, kind: str) -> list[tuple[str, dict]]:
    """Each item of an "inputs" or "outputs" list with its name: an object with a string
    "name", no name twice."""
    named = {}
    for item in items:
        item_name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(item_name, str):
            raise ApiError(400, f'each {kind} must be an object with a string "name"')
        if item_name in named:
            raise ApiError(400, f"{kind} {item_name!r} given twice")
        named[item_name] = item
    return list(named.items())


def _parameters(item: dict, where: str) -> dict:
    """An object's optional "parameters" (an object itself)."""
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ApiError(400, f"{where} parameters must be an object")
    return parameters

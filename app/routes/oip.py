"""Open Inference Protocol (KServe v2) REST: server and model metadata, readiness, infer."""

import time

from flask import Blueprint, jsonify

from app import __version__
from app.errors import ApiError
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
    specs = {spec.name: spec for spec in model.inputs}
    arrays = {}
    for item in body["inputs"]:
        item_name = _name_of(item)
        if item_name not in specs:
            raise ApiError(400, f"unknown input {item_name!r}; the model takes {sorted(specs)}")
        if item_name in arrays:
            raise ApiError(400, f"input {item_name!r} given twice")
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


def _requested_outputs(requested: object, model):
    if requested is None:
        return list(model.outputs)
    by_name = {spec.name: spec for spec in model.outputs}
    if not isinstance(requested, list):
        raise ApiError(400, '"outputs" must be a list of {"name": ...}')
    chosen = []
    for item in requested:
        item_name = _name_of(item)
        if item_name not in by_name:
            raise ApiError(400, f"unknown output {item_name!r}; the model has {sorted(by_name)}")
        parameters = item.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ApiError(400, f"output {item_name!r}: parameters must be an object")
        if parameters.get("binary_data"):
            raise ApiError(
                400,
                "the binary tensor data extension is not supported; "
                "request JSON outputs (binary_data: false)",
            )
        chosen.append(by_name[item_name])
    return chosen


def _name_of(item: object) -> str | None:
    """An input's or output's "name", when it is a string (anything else names nothing)."""
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None

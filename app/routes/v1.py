"""KServe v1 / TF Serving REST: the model list, model status and `:predict`."""

from flask import Blueprint, jsonify
from werkzeug.routing import BaseConverter

from app import image_requests
from app.errors import ApiError
from app.protocols import tfserving
from app.requests import json_body
from app.service import service


class ModelName(BaseConverter):
    """A path segment without ':', so that `/v1/models/digits:predict` is the verb's route
    and never model "digits:predict" (a name never holds one: app/config.py)."""

    regex = "[^/:]+"


bp = Blueprint("v1", __name__, url_prefix="/v1")
bp.record_once(lambda state: state.app.url_map.converters.update(model=ModelName))


@bp.get("/models")
def models():
    return jsonify(models=[service().config.model_name])


@bp.get("/models/<model:name>")
@bp.get("/models/<model:name>/versions/<model:version>")
def model_status(name: str, version: str | None = None):
    """KServe v1's {"name", "ready"} and TF Serving's model_version_status in one answer:
    200 when ready, else 503 with the reason in "error" (as KServe answers)."""
    svc = service()
    try:
        svc.require_model(name, version)
    except ApiError as error:
        if error.status != 503:
            raise
    if svc.ready:
        state, code, reason = "AVAILABLE", "OK", ""
    elif svc.model is not None:
        state, code, reason = "UNLOADING", "OK", "the server is draining for a shutdown"
    else:
        state, code, reason = "END", "UNAVAILABLE", f"not loaded: {svc.load_error}"
    status = {"error_code": code, "error_message": reason}
    body = {
        "name": name,
        "ready": svc.ready,
        "model_version_status": [
            {"version": svc.config.model_version, "state": state, "status": status}
        ],
    }
    if not svc.ready:
        body["error"] = f"model {name!r} is not ready: {reason}"
    return jsonify(body), 200 if svc.ready else 503


@bp.post("/models/<model:name>:predict")
@bp.post("/models/<model:name>/versions/<model:version>:predict")
def predict(name: str, version: str | None = None):
    """Numeric rows or columns (app/protocols/tfserving.py), or b64 images as instances:
    every output of the model, as tensors."""
    svc = service()
    model = svc.require_model(name, version)
    body = json_body()
    blobs = image_requests.from_instances(body, model)
    if blobs is None:
        inference = tfserving.decode(body, model, svc.config.max_batch_size)
    else:
        inputs = image_requests.batch(blobs, model, svc.config)
        inference = tfserving.PredictRequest(model, inputs, model.outputs)
    return jsonify(tfserving.encode(inference, svc.run(inference)))

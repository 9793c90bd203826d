"""Open Inference Protocol (KServe v2) REST: server and model metadata, readiness, infer."""

from flask import Blueprint, jsonify

from app import __version__
from app.errors import ApiError
from app.protocols import oip
from app.requests import json_body
from app.service import service

bp = Blueprint("oip", __name__, url_prefix="/v2")


@bp.get("")
@bp.get("/")  # the path the protocol's OpenAPI file gives
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
    inference = oip.decode(json_body(), model, svc.config.max_batch_size)
    return jsonify(oip.encode(inference, svc.run(inference)))

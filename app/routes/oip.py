"""Open Inference Protocol (KServe v2) REST: server and model metadata, readiness, infer
(JSON, or with the binary tensor data extension)."""

from flask import Blueprint, Response, current_app, jsonify, request

from app import __version__
from app.errors import ApiError
from app.protocols import binary, oip
from app.requests import body, is_json, parse_json
from app.service import service

bp = Blueprint("oip", __name__, url_prefix="/v2")


@bp.get("")
@bp.get("/")  # the path the protocol's OpenAPI file gives
def server_metadata():
    return jsonify(name="ai-app", version=__version__, extensions=oip.EXTENSIONS)


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
    parsed, binary_part = _read_request()
    inference = oip.decode(
        parsed,
        model,
        svc.config.max_batch_size,
        binary_part=binary_part,
        max_image_pixels=svc.config.max_image_pixels,
    )
    answer, tensors = oip.encode(inference, svc.run(inference))
    if not tensors:
        return jsonify(answer)
    json_part = current_app.json.dumps(answer).encode()
    return Response(
        binary.body(json_part, tensors),
        content_type=binary.CONTENT_TYPE,
        headers={binary.HEADER: str(len(json_part))},
    )


def _read_request() -> tuple[object, memoryview | None]:
    """The inference request object, and the binary data after it when the binary tensor
    data extension's header says where the JSON part ends."""
    header = request.headers.get(binary.HEADER)
    raw = body(
        is_json(request.mimetype) or request.mimetype == binary.CONTENT_TYPE,
        f"send application/json, or {binary.CONTENT_TYPE} with the {binary.HEADER} header",
    )
    json_part, binary_part = binary.split(raw, header)
    if header is None:
        advice = f"; binary tensor data needs the {binary.HEADER} header, the JSON part's length"
        return parse_json(raw, "JSON body", advice), None
    return parse_json(bytes(json_part), f"JSON part ({header} bytes, {binary.HEADER})"), binary_part

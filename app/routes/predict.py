"""`POST /predict` for simple clients: numeric instances, or images (a raw image body,
multipart files, b64 instances: app/image_requests.py) in; "predictions" out.

Numbers in: TF Serving's row format (`/v1/models/<name>:predict`, app/protocols/tfserving.py).
Out: the model's first output, one entry per instance or image in request order, labelled
(app/labels.py, `?top_k=`) when the model declares labels; the model's identity beside it."""

from flask import Blueprint, jsonify, request

from app import image_requests, labels
from app.errors import ApiError
from app.protocols import Inference, tfserving
from app.requests import json_body
from app.service import service
from app.tensors import json_data

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict():
    svc = service()
    config = svc.config
    model = svc.require_model(config.model_name)
    image_requests.check_content_type(request.mimetype)
    top_k = request.args.get("top_k")
    if model.labels is None and top_k is not None:
        raise ApiError(400, f"top_k: model {model.name!r} declares no labels")
    k = labels.top_k_param(top_k, len(model.labels)) if model.labels else 0
    if image_requests.is_image_body(request.mimetype):
        blobs = image_requests.from_body(model, config.max_batch_size)
        inputs = image_requests.batch(blobs, model, config)
    else:
        body = json_body()
        if not isinstance(body, dict):
            raise ApiError(400, 'the body must be an object with an "instances" list')
        blobs = image_requests.from_instances(body, model)
        if blobs is None:
            inputs = tfserving.rows(body.get("instances"), model, config.max_batch_size)
        else:
            inputs = image_requests.batch(blobs, model, config)
    (output,) = svc.run(Inference(model, inputs, model.outputs[:1]))
    return jsonify(
        predictions=labels.classify(output, model.labels, k) if model.labels else json_data(output),
        model={"name": model.name, "version": model.version, "digest": model.digest},
    )

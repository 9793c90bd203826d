"""`POST /predict` for simple clients: {"instances": [...]} -> {"predictions": [...]}.

TF Serving's row format (`/v1/models/<name>:predict`, app/protocols/tfserving.py) with the
model's first output only, and the model's identity in the answer."""

from flask import Blueprint, jsonify

from app.errors import ApiError
from app.protocols import Inference, tfserving
from app.requests import json_body
from app.service import service
from app.tensors import json_data

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict():
    svc = service()
    model = svc.require_model(svc.config.model_name)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be an object with an "instances" list')
    inputs = tfserving.rows(body.get("instances"), model, svc.config.max_batch_size)
    (predictions,) = svc.run(Inference(model, inputs, model.outputs[:1]))
    return jsonify(
        predictions=json_data(predictions),
        model={"name": model.name, "version": model.version, "digest": model.digest},
    )

"""`POST /predict` for simple clients: {"instances": [...]} -> {"predictions": [...]}."""

import time

from flask import Blueprint, jsonify

from app.errors import ApiError
from app.requests import json_body
from app.service import service
from app.tensors import decode_instances

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict():
    svc = service()
    model = svc.require_model(svc.config.model_name)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be an object with an "instances" list')
    instances = body.get("instances")
    spec = model.inputs[0]
    array = decode_instances(instances, spec, svc.config.max_batch_size)

    started = time.perf_counter()
    (predictions,) = model.predict({spec.name: array}, [model.outputs[0].name])
    svc.metrics.inference_seconds.observe(time.perf_counter() - started)
    svc.metrics.batch_size.observe(len(instances))
    return jsonify(
        predictions=predictions.tolist(),
        model={"name": model.name, "version": model.version, "digest": model.digest},
    )

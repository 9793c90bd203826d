"""The OpenAPI 3.0 description of every route of the public port, served at /openapi.json (the
fuzz tests read it). Metrics are not among them: the master serves them on a port of its own.

Request bodies follow the Open Inference Protocol's REST spec (KServe v2) and TF Serving's
REST predict API (KServe v1), as JSON, gzip or deflate (Content-Encoding); every client error
is a JSON `{"error": "..."}` with a 4xx status.
"""

from app import __version__
from app.images import CONTENT_TYPES as IMAGE_CONTENT_TYPES
from app.model import OIP_DATATYPES

JSON = "application/json"


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _text(kind: str) -> dict:
    return {kind: {"schema": {"type": "string"}}}


def _asset(kind: str) -> dict:
    return {"description": "the file", "content": _text(kind)}


def _path_params(*names: str) -> list[dict]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


# Request and answer codings, on every route that takes a body (app/content_coding.py).
_CODING_HEADERS = [
    {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "description": "the body's coding; decompressed under MAX_REQUEST_BYTES; others: 415",
        "schema": {"type": "string", "enum": ["identity", "gzip", "deflate"]},
    },
    {
        "name": "Accept-Encoding",
        "in": "header",
        "required": False,
        "description": "gzip or deflate: a successful answer of 1 KiB or more is compressed",
        "schema": {"type": "string"},
    },
]


def _op(summary: str, ok: dict, *errors: int, body: str | None = None, params=()) -> dict:
    messages = {
        400: "malformed request: the message says what is wrong",
        404: "no such model or version",
        413: "request body too large, as sent or once decompressed",
        415: "content type is not JSON, or a content coding other than gzip or deflate",
        503: "the model is not loaded (yet), or the server is draining",
    }
    operation = {
        "summary": summary,
        "responses": {"200": ok, **{str(code): _error(messages[code]) for code in errors}},
    }
    parameters = _path_params(*params) + (_CODING_HEADERS if body else [])
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return operation


def _schema(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_READY = _json(
    {"type": "object", "properties": {"ready": {"type": "boolean"}}, "required": ["ready"]},
    "ready",
)
_NOT_READY = _json(
    {"type": "object", "properties": {"ready": {"type": "boolean"}}}, "not ready, or draining"
)
_MODEL_READY = _json(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
        "required": ["name", "ready"],
    },
    "the model's readiness",
)
_MODEL_STATES = ["AVAILABLE", "UNLOADING", "END"]  # TF Serving's, those this server reaches
_NAME = ("name",)
_VERSIONED = ("name", "version")
_BODY_ERRORS = (400, 404, 413, 415, 503)


def _infer(params: tuple[str, ...]) -> dict:
    """OIP inference, JSON or with the binary tensor data extension (app/protocols/binary.py):
    the JSON part, then the raw tensors; its length in Inference-Header-Content-Length."""
    operation = _op(
        "Open Inference Protocol inference",
        _json(_schema("InferenceResponse"), "outputs"),
        *_BODY_ERRORS,
        body="InferenceRequest",
        params=params,
    )
    binary = {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": "the inference request (response) object as JSON, then the binary "
            "data of each input (output) with parameters.binary_data_size, in order",
        }
    }
    operation["requestBody"]["content"]["application/octet-stream"] = binary
    operation["responses"]["415"] = _error(
        "content type neither JSON nor application/octet-stream, or a content coding other "
        "than gzip or deflate"
    )
    operation["responses"]["200"]["content"]["application/octet-stream"] = binary
    operation["parameters"].append(
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "binary tensor data: the byte length of the body's JSON part",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        }
    )
    return operation


def _metadata(params: tuple[str, ...]) -> dict:
    return _op(
        "Model metadata: inputs and outputs with datatypes and shapes",
        _json(_schema("ModelMetadata"), "metadata"),
        404,
        503,
        params=params,
    )


def _model_ready(params: tuple[str, ...]) -> dict:
    operation = _op("Model readiness", _MODEL_READY, 404, params=params)
    operation["responses"]["503"] = _MODEL_READY | {"description": "not ready"}
    return operation


def _v1_status(params: tuple[str, ...]) -> dict:
    status = _schema("ModelStatus")
    operation = _op(
        "KServe v1 model ready and TF Serving model status", _json(status, "ready"), 404
    )
    operation["parameters"] = _path_params(*params)
    operation["responses"]["503"] = _json(status, 'not ready: "error" says why')
    return operation


def _v1_predict(params: tuple[str, ...]) -> dict:
    return _op(
        "TF Serving / KServe v1 predict: rows (instances) or columns (inputs), every output",
        _json(_schema("V1PredictResponse"), "predictions (rows) or outputs (columns)"),
        *_BODY_ERRORS,
        body="V1PredictRequest",
        params=params,
    )


_BINARY = {"type": "string", "format": "binary"}


def _predict() -> dict:
    """/predict: numeric instances or images (app/image_requests.py); labelled answers for
    a model with labels (app/labels.py)."""
    operation = _op(
        "Predict the first output for a batch of instances or images, labelled when the "
        "model declares labels",
        _json(_schema("PredictResponse"), "predictions, in request order"),
        400,
        413,
        415,
        503,
        body="PredictRequest",
    )
    operation["responses"]["415"] = _error(
        "content type is none of JSON, multipart/form-data and the image types; images to a "
        "model without preprocessor_config.json; a content coding other than gzip or deflate"
    )
    operation["parameters"].insert(
        0,
        {
            "name": "top_k",
            "in": "query",
            "required": False,
            "description": "labels per image for a model with labels (default 5, capped at "
            "the class count); 400 for a model without",
            "schema": {"type": "integer", "minimum": 1, "maximum": 999999999},
        },
    )
    images = {
        "type": "object",
        "description": "one or more image files, a batch in order",
        "additionalProperties": {"oneOf": [_BINARY, {"type": "array", "items": _BINARY}]},
    }
    operation["requestBody"]["content"] |= {
        "multipart/form-data": {"schema": images},
        **{kind: {"schema": _BINARY} for kind in IMAGE_CONTENT_TYPES},
    }
    return operation


_TENSOR_DATA = {
    "description": "flat (row-major) or nested to the tensor's shape; in an answer, null "
    "stands for NaN or ±Infinity",
    "type": "array",
    "items": {},
}
_DATATYPE = {"type": "string", "enum": sorted(OIP_DATATYPES)}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_PARAMETERS = {
    "description": "string, number or boolean values; unknown ones are ignored; binary "
    "tensor data: binary_data_size (inputs), binary_data (outputs), binary_data_output",
    "type": "object",
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
    },
}


def _tensor(**extra: dict) -> dict:
    """An OIP tensor in a request or a response: name, shape, datatype, data (+ extra)."""
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": _SHAPE,
            "datatype": _DATATYPE,
            **extra,
            "data": _TENSOR_DATA,
        },
        "required": ["name", "shape", "datatype", "data"],
    }


SPEC = {
    "openapi": "3.0.3",
    "info": {
        "title": "ai-app inference service",
        "version": __version__,
        "description": "Open Inference Protocol (KServe v2) REST, KServe v1 / TF Serving "
        "REST predict, a simple /predict (numbers or images in, labels out) and an upload page.",
    },
    "paths": {
        "/": {
            "get": _op(
                "Service, version and the model served; the upload page for a browser "
                "(Accept: text/html)",
                _json({"type": "object"}, "info")
                | {"content": {JSON: {"schema": {"type": "object"}}, **_text("text/html")}},
            )
        },
        "/page/page.js": {"get": _op("The upload page's script", _asset("text/javascript"))},
        "/page/page.css": {"get": _op("The upload page's style sheet", _asset("text/css"))},
        "/page/favicon.svg": {"get": _op("The upload page's icon", _asset("image/svg+xml"))},
        "/v2/health/live": {"get": _op("Liveness", _json({"type": "object"}, "live"))},
        "/v2/health/ready": {
            "get": _op("Readiness", _READY) | {"responses": {"200": _READY, "503": _NOT_READY}}
        },
        "/v2": {"get": _op("Server metadata", _json(_schema("Server"), "ok"))},
        "/v2/": {"get": _op("Server metadata", _json(_schema("Server"), "ok"))},
        "/v2/models/{name}": {"get": _metadata(_NAME)},
        "/v2/models/{name}/versions/{version}": {"get": _metadata(_VERSIONED)},
        "/v2/models/{name}/ready": {"get": _model_ready(_NAME)},
        "/v2/models/{name}/versions/{version}/ready": {"get": _model_ready(_VERSIONED)},
        "/v2/models/{name}/infer": {"post": _infer(_NAME)},
        "/v2/models/{name}/versions/{version}/infer": {"post": _infer(_VERSIONED)},
        "/v1/models": {
            "get": _op("KServe v1 model list", _json(_schema("ModelList"), "the model's name"))
        },
        "/v1/models/{name}": {"get": _v1_status(_NAME)},
        "/v1/models/{name}/versions/{version}": {"get": _v1_status(_VERSIONED)},
        "/v1/models/{name}:predict": {"post": _v1_predict(_NAME)},
        "/v1/models/{name}/versions/{version}:predict": {"post": _v1_predict(_VERSIONED)},
        "/predict": {"post": _predict()},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            },
            "Server": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "extensions": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "version", "extensions"],
            },
            "TensorMetadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "datatype": _DATATYPE,
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
                },
                "required": ["name", "datatype", "shape"],
            },
            "ModelMetadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/TensorMetadata"},
                    },
                    "outputs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/TensorMetadata"},
                    },
                },
                "required": ["name", "platform", "inputs", "outputs"],
            },
            # data, or parameters.binary_data_size with binary tensor data
            "RequestInput": _tensor(parameters=_PARAMETERS)
            | {"required": ["name", "shape", "datatype"]},
            "RequestOutput": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
                "required": ["name"],
            },
            "InferenceRequest": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "parameters": _PARAMETERS,
                    "inputs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/RequestInput"},
                    },
                    "outputs": {
                        "description": "absent, null or empty: every output; names unique",
                        "nullable": True,
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/RequestOutput"},
                    },
                },
                "required": ["inputs"],
            },
            "ResponseOutput": _tensor(),
            "InferenceResponse": {
                "type": "object",
                "properties": {
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "id": {"type": "string"},
                    "outputs": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ResponseOutput"},
                    },
                },
                "required": ["model_name", "outputs"],
            },
            "PredictRequest": {
                "type": "object",
                "properties": {
                    "instances": {
                        "description": 'the sole input\'s value per instance, or {"b64": '
                        '"<base64 image>"} per image for a model with preprocessor_config.json',
                        "type": "array",
                        "minItems": 1,
                        "items": {},
                    }
                },
                "required": ["instances"],
            },
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "predictions": {
                        "description": "one per instance or image: a Prediction for a model "
                        "with labels, else the first output's value",
                        "type": "array",
                        "items": {"anyOf": [_schema("Prediction"), {}]},
                    },
                    "model": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "digest": {"type": "string"},
                        },
                        "required": ["name", "version", "digest"],
                    },
                },
                "required": ["predictions", "model"],
            },
            "LabelScore": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "index": {"type": "integer", "minimum": 0},
                    "score": {
                        "description": "a probability: the model's own, or the softmax of "
                        "its logits; null for a non-finite output",
                        "type": "number",
                        "nullable": True,
                        "minimum": 0,
                        "maximum": 1,
                    },
                },
                "required": ["label", "index", "score"],
            },
            "Prediction": {
                "allOf": [
                    _schema("LabelScore"),
                    {
                        "type": "object",
                        "properties": {
                            "top_k": {
                                "description": "the top_k best, best first",
                                "type": "array",
                                "items": _schema("LabelScore"),
                            }
                        },
                        "required": ["top_k"],
                    },
                ]
            },
            "ModelList": {
                "type": "object",
                "properties": {"models": {"type": "array", "items": {"type": "string"}}},
                "required": ["models"],
            },
            "ModelStatus": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "ready": {"type": "boolean"},
                    "error": {"type": "string"},
                    "model_version_status": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "version": {"type": "string"},
                                "state": {"type": "string", "enum": _MODEL_STATES},
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "error_code": {"type": "string"},
                                        "error_message": {"type": "string"},
                                    },
                                    "required": ["error_code", "error_message"],
                                },
                            },
                            "required": ["version", "state", "status"],
                        },
                    },
                },
                "required": ["name", "ready", "model_version_status"],
            },
            "V1PredictRequest": {
                "type": "object",
                "properties": {
                    "signature_name": {"type": "string", "enum": ["serving_default"]},
                    "instances": {
                        "description": "rows: the sole input's value per instance, or an "
                        'object naming every input, or {"b64": "<base64 image>"} per image '
                        "for a model with preprocessor_config.json",
                        "type": "array",
                        "minItems": 1,
                        "items": {},
                    },
                    "inputs": {
                        "description": "columns: the sole input's tensor, or an object of "
                        "tensors by input name"
                    },
                },
                "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
            },
            "V1PredictResponse": {
                "type": "object",
                "properties": {
                    "predictions": {
                        "description": "one entry per instance: the output's value, or an "
                        "object of every output by name",
                        "type": "array",
                    },
                    "outputs": {
                        "description": "the output's tensor, or an object of tensors by name"
                    },
                },
                "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}],
            },
        }
    },
}

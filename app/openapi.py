"""The OpenAPI 3.0 description of every route of the public port, served at /openapi.json (the
fuzz tests read it). Metrics are not among them: the master serves them on a port of its own.

Request bodies follow the Open Inference Protocol's REST spec (KServe v2); every client error
is a JSON `{"error": "..."}` with a 4xx status.
"""

from app import __version__
from app.model import OIP_DATATYPES

JSON = "application/json"


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _path_params(*names: str) -> list[dict]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _op(summary: str, ok: dict, *errors: int, body: str | None = None, params=()) -> dict:
    messages = {
        400: "malformed request: the message says what is wrong",
        404: "no such model or version",
        413: "request body too large",
        415: "content type is not JSON",
        503: "the model is not loaded (yet), or the server is draining",
    }
    operation = {
        "summary": summary,
        "responses": {"200": ok, **{str(code): _error(messages[code]) for code in errors}},
    }
    if params:
        operation["parameters"] = _path_params(*params)
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return operation


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
_NAME = ("name",)
_WITH_VERSION = {"parameters": _path_params("name", "version")}

_infer = _op(
    "Open Inference Protocol inference",
    _json({"$ref": "#/components/schemas/InferenceResponse"}, "outputs"),
    400,
    404,
    413,
    415,
    503,
    body="InferenceRequest",
    params=_NAME,
)
_metadata = _op(
    "Model metadata: inputs and outputs with datatypes and shapes",
    _json({"$ref": "#/components/schemas/ModelMetadata"}, "metadata"),
    404,
    503,
    params=_NAME,
)
_model_ready = _op("Model readiness", _MODEL_READY, 404, params=_NAME)
_model_ready["responses"]["503"] = _MODEL_READY | {"description": "not ready"}

_TENSOR_DATA = {
    "description": "flat (row-major) or nested to the tensor's shape",
    "type": "array",
    "items": {},
}
_DATATYPE = {"type": "string", "enum": sorted(OIP_DATATYPES)}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}


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
        "description": "Open Inference Protocol (KServe v2) REST, plus a simple /predict.",
    },
    "paths": {
        "/": {
            "get": _op("Service, version and the model served", _json({"type": "object"}, "info"))
        },
        "/v2/health/live": {"get": _op("Liveness", _json({"type": "object"}, "live"))},
        "/v2/health/ready": {
            "get": _op("Readiness", _READY) | {"responses": {"200": _READY, "503": _NOT_READY}}
        },
        "/v2": {
            "get": _op("Server metadata", _json({"$ref": "#/components/schemas/Server"}, "ok"))
        },
        "/v2/models/{name}": {"get": _metadata},
        "/v2/models/{name}/versions/{version}": {"get": _metadata | _WITH_VERSION},
        "/v2/models/{name}/ready": {"get": _model_ready},
        "/v2/models/{name}/versions/{version}/ready": {"get": _model_ready | _WITH_VERSION},
        "/v2/models/{name}/infer": {"post": _infer},
        "/v2/models/{name}/versions/{version}/infer": {"post": _infer | _WITH_VERSION},
        "/predict": {
            "post": _op(
                "Predict the first output for a batch of instances",
                _json({"$ref": "#/components/schemas/PredictResponse"}, "predictions"),
                400,
                413,
                415,
                503,
                body="PredictRequest",
            )
        },
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
            "RequestInput": _tensor(parameters={"type": "object"}),
            "RequestOutput": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                "required": ["name"],
            },
            "InferenceRequest": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
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
                "properties": {"instances": {"type": "array", "minItems": 1, "items": {}}},
                "required": ["instances"],
            },
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "predictions": {"type": "array"},
                    "model": {"type": "object"},
                },
                "required": ["predictions", "model"],
            },
        }
    },
}

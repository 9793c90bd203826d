"""Encoded images in a request, every way clients send them, into one batch for the model
through app/images.py: a raw image body (`Content-Type: image/jpeg`, ...), multipart/form-data
files (a batch, in order), or TF Serving's b64 instances (`{"instances": [{"b64": "..."}]}`,
"Encoding binary values", as KServe v1 reads them).

Multipart bodies are parsed from the body already read within MAX_REQUEST_BYTES, into memory:
never through `request.files`, whose parser spools large files to a temporary file (there is
no writable /tmp on the pod's read-only root filesystem)."""

import base64
import binascii
from io import BytesIO

import numpy as np
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from app import images
from app.config import AppConfig
from app.errors import ApiError
from app.model import Model
from app.requests import body, is_json
from app.tensors import check_shape

MULTIPART = "multipart/form-data"
ACCEPTED = ", ".join(["application/json", MULTIPART, *images.CONTENT_TYPES])
_NO_IMAGES = "model {!r} takes no images (its version has no preprocessor_config.json)"


def is_image_body(mimetype: str) -> bool:
    return mimetype == MULTIPART or mimetype in images.CONTENT_TYPES


def check_content_type(mimetype: str) -> None:
    """415 naming what /predict takes, for anything neither JSON nor images."""
    if not is_json(mimetype) and not is_image_body(mimetype):
        raise ApiError(415, f"content type {mimetype!r} is not supported; send one of {ACCEPTED}")


def from_body(model: Model, max_batch: int) -> list[bytes]:
    """The encoded images of a raw image body (one) or of a multipart body (its files)."""
    if model.image_input is None:
        raise ApiError(415, f"{_NO_IMAGES.format(model.name)}: send its input tensors as JSON")
    raw = body(accepted=True, advice="")
    if request.mimetype != MULTIPART:
        return [raw]
    return _files(raw, max_batch)


def from_instances(parsed: object, model: Model) -> list[bytes] | None:
    """The images of a JSON body `{"instances": [{"b64": "..."}, ...]}`; None when the
    instances are not b64 objects (numeric tensors, decoded as before)."""
    instances = parsed.get("instances") if isinstance(parsed, dict) else None
    if not isinstance(instances, list) or not any(
        isinstance(instance, dict) and "b64" in instance for instance in instances
    ):
        return None
    if model.image_input is None:
        raise ApiError(
            400, f'instances: {{"b64": ...}} is an image; {_NO_IMAGES.format(model.name)}'
        )
    blobs = []
    for number, instance in enumerate(instances, 1):
        if not isinstance(instance, dict) or set(instance) != {"b64"}:
            raise ApiError(400, f'instance {number}: expected {{"b64": "<base64 image>"}}')
        if not isinstance(instance["b64"], str):
            raise ApiError(400, f"instance {number}: b64 must be a string")
        try:
            blobs.append(base64.b64decode(instance["b64"], validate=True))
        except (binascii.Error, ValueError):
            raise ApiError(400, f"instance {number}: b64 is not valid base64") from None
    return blobs


def batch(blobs: list[bytes], model: Model, config: AppConfig) -> dict[str, np.ndarray]:
    """The model's input for these encoded images: decoded, preprocessed, stacked."""
    spec = model.inputs[0]
    if len(blobs) > config.max_batch_size:
        raise ApiError(
            400, f"a batch of {len(blobs)} images is over the maximum {config.max_batch_size}"
        )
    array = images.to_batch(blobs, model.image_input, np.dtype(spec.dtype), config.max_image_pixels)
    check_shape(spec.name, array.shape, spec, config.max_batch_size)
    return {spec.name: array}


def _files(raw: bytes, max_batch: int) -> list[bytes]:
    """The files of a multipart body, in order; at most `max_batch` parts."""
    parser = FormDataParser(
        stream_factory=lambda **_: BytesIO(), max_form_parts=max_batch, cls=list, silent=False
    )
    try:
        _, fields, files = parser.parse(BytesIO(raw), MULTIPART, len(raw), request.mimetype_params)
    except RequestEntityTooLarge:
        raise ApiError(
            400, f"more than {max_batch} multipart parts: a batch holds at most {max_batch} images"
        ) from None
    except ValueError as error:
        raise ApiError(400, f"malformed multipart body: {error}") from None
    if fields:
        name = fields[0][0]
        raise ApiError(400, f"multipart part {name!r} is not a file: send images as files")
    if not files:
        raise ApiError(400, "the multipart body holds no files")
    return [storage.stream.getvalue() for _, storage in files]

"""Response bodies: strict JSON, and gzip or deflate for a large answer to a client that
accepts it (Accept-Encoding)."""

from flask import Response, request
from flask.json.provider import DefaultJSONProvider

from app import content_coding

COMPRESS_FROM_BYTES = 1024  # smaller answers gain too little to pay for the CPU


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, keys in insertion order, and never a NaN or Infinity literal: those
    are not JSON (RFC 8259) and a strict parser refuses the whole body. Tensors write them
    as null (app/tensors.py); anything else that holds one is a bug, answered as a 500."""

    sort_keys = False

    def dumps(self, obj: object, **kwargs: object) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def compress(response: Response) -> Response:
    """after_request: a successful answer of COMPRESS_FROM_BYTES or more, compressed with
    the coding the client prefers among gzip and deflate. Errors stay plain: they are short,
    and tritonclient reads an error body without decompressing it."""
    response.vary.add("Accept-Encoding")
    if (
        response.status_code != 200
        or response.direct_passthrough
        or "Content-Encoding" in response.headers
        or (response.content_length or 0) < COMPRESS_FROM_BYTES
    ):
        return response
    coding = request.accept_encodings.best_match(["gzip", "deflate"])
    if coding is not None:
        response.set_data(content_coding.encode(coding, response.get_data()))
        response.headers["Content-Encoding"] = coding
    return response

"""Reading request bodies: JSON only, size-capped, never a 500 on hostile input."""

import json

from flask import request

from app.errors import ApiError


def json_body() -> object:
    """The parsed JSON body; 415 for another content type, 400 for malformed JSON."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, f"content type {mimetype!r} is not supported; send application/json")
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(400, f"malformed JSON body: {detail}") from None

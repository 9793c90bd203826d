"""Reading request bodies: JSON only, gzip/deflate undone, size-capped before and after
decompression, never a 500 on hostile input."""

import json

from flask import request

from app import content_coding
from app.errors import ApiError
from app.service import service


def json_body() -> object:
    """The parsed JSON body: 415 for another content type or coding, 413 past the size limit
    (compressed or not), 400 for a corrupt compressed body or malformed JSON."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, f"content type {mimetype!r} is not supported; send application/json")
    limit = service().config.max_request_bytes
    raw = request.get_data(cache=False)  # werkzeug raises 413 past MAX_CONTENT_LENGTH
    if len(raw) > limit:
        # werkzeug cuts a chunked body off at MAX_CONTENT_LENGTH without an error; that is
        # set one byte over our limit (create_app), so a body cut there is over the limit.
        raise ApiError(413, "request body too large")
    try:
        raw = content_coding.decode(request.headers.get("Content-Encoding", ""), raw, limit)
    except content_coding.UnsupportedCoding as error:
        raise ApiError(
            415,
            f"content coding {str(error)!r} is not supported; send gzip, deflate or identity",
            headers={"Accept-Encoding": content_coding.SUPPORTED},
        ) from None
    except content_coding.TooLarge:
        raise ApiError(
            413, f"request body too large once decompressed (over {limit} bytes)"
        ) from None
    except content_coding.CorruptBody as error:
        raise ApiError(400, f"corrupt request body: {error}") from None
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(400, f"malformed JSON body: {detail}") from None


def _refuse_constant(name: str) -> None:
    """NaN, Infinity and -Infinity are Python's extensions, not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not a JSON number")

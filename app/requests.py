"""Reading request bodies: gzip/deflate undone, size-capped before and after decompression,
JSON parsed strictly, never a 500 on hostile input."""

import json

from flask import request

from app import content_coding
from app.errors import ApiError
from app.service import service


def json_body() -> object:
    """The parsed JSON body: 415 for another content type or coding, 413 past the size limit
    (compressed or not), 400 for a corrupt compressed body or malformed JSON."""
    return parse_json(body(is_json(request.mimetype), "send application/json"))


def is_json(mimetype: str) -> bool:
    """JSON, or no content type at all (as tritonclient sends)."""
    return not mimetype or mimetype == "application/json" or mimetype.endswith("+json")


def body(accepted: bool, advice: str) -> bytes:
    """The request body, decoded: `accepted` says whether its content type is one the route
    takes (415 with `advice` if not)."""
    if not accepted:
        raise ApiError(415, f"content type {request.mimetype!r} is not supported; {advice}")
    limit = service().config.max_request_bytes
    raw = request.get_data(cache=False)  # werkzeug raises 413 past MAX_CONTENT_LENGTH
    if len(raw) > limit:
        # werkzeug cuts a chunked body off at MAX_CONTENT_LENGTH without an error; that is
        # set one byte over our limit (create_app), so a body cut there is over the limit.
        raise ApiError(413, "request body too large")
    try:
        return content_coding.decode(request.headers.get("Content-Encoding", ""), raw, limit)
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


def parse_json(raw: bytes, what: str = "JSON body", after_json: str = "") -> object:
    """`raw` parsed as strict JSON, or a 400 naming `what` and what is wrong with it; a JSON
    value followed by more bytes (binary data, say) is told apart, `after_json` the advice."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, f"malformed {what}: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        text = raw[: error.start] if isinstance(error, UnicodeDecodeError) else raw
        end = _json_end(text)
        if end is not None:
            raise ApiError(
                400, f"malformed {what}: a JSON value, then {len(raw) - end} more bytes{after_json}"
            ) from None
        if isinstance(error, UnicodeDecodeError):
            raise ApiError(400, f"malformed {what}: byte {error.start} is not UTF-8") from None
        raise ApiError(400, f"malformed {what}: {error}") from None
    except ValueError as error:  # a NaN or Infinity literal (_refuse_constant)
        raise ApiError(400, f"malformed {what}: {error}") from None


def _json_end(data: bytes) -> int | None:
    """The byte length of the JSON value `data` starts with (leading whitespace included),
    None if it doesn't start with one."""
    try:
        text = data.decode()
        body = text.lstrip()
        _, end = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return None
    return len(text[: len(text) - len(body) + end].encode())


def _refuse_constant(name: str) -> None:
    """NaN, Infinity and -Infinity are Python's extensions, not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not a JSON number")

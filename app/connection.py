"""Keep-alive kept honest. gunicorn keeps a connection after an answer only once it has read
what is left of the request's body, and it reads at most 64 KiB of it: an answer given
before the body was read (a 404, 415 or 503) would say `Connection: keep-alive` and then
drop the connection under the client's next request. So before any answer goes out, what
is left of a body within MAX_REQUEST_BYTES is read and dropped, and a body over that limit,
left unread on purpose, makes gunicorn answer `Connection: close` instead."""

import threading

from flask import Response, request

from app.service import service

READ_BYTES = 64 * 1024
_serving = threading.local()  # the gunicorn request this worker thread is serving


def serving(req: object) -> None:
    """gunicorn's pre_request hook, in the thread that then runs the app for `req`."""
    _serving.request = req


def finish_body(response: Response) -> Response:
    """after_request: the request body read to its end, or the connection closed after
    this answer."""
    limit = service().config.max_request_bytes
    declared = request.content_length  # None when chunked
    if (declared is not None and declared > limit) or not _read_to_end(limit):
        req = getattr(_serving, "request", None)
        if req is not None:  # under gunicorn
            req.force_close()
    return response


def _read_to_end(limit: int) -> bool:
    """Read and drop what is left of the body, up to `limit` bytes: True if it ended."""
    stream = request.environ["wsgi.input"]
    left = limit
    while left >= 0:
        chunk = stream.read(READ_BYTES)
        if not chunk:
            return True
        left -= len(chunk)
    return False

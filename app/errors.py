"""Client errors as 4xx JSON bodies `{"error": "..."}`; nothing a client sends becomes a 500."""

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error the client can fix (4xx) or a state the server is in (503)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return jsonify(error=error.message), error.status, error.headers

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            404: "no such route",
            405: "method not allowed for this route",
            413: "request body too large",
        }
        message = messages.get(error.code, error.description or error.name)
        # Keep werkzeug's headers (a 405's Allow, for one); the body is ours.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return jsonify(error=message), error.code, headers

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unhandled error")
        return jsonify(error="internal error"), 500

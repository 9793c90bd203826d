"""The upload page for people: `GET /` in a browser (Accept: text/html; JSON clients keep
the service info: app/routes/health.py) and its script and style sheet, package data under
app/page/. Everything comes from this origin, and the Content-Security-Policy says so."""

from html import escape
from importlib.resources import files
from string import Template

from flask import Blueprint, Response, request

from app.service import service

bp = Blueprint("page", __name__)

PAGE = files("app") / "page"
CSP = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
ASSETS = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_INDEX = Template((PAGE / "index.html").read_text(encoding="utf-8"))
_ASSETS = {name: (PAGE / name).read_bytes() for name in ASSETS}


def wants_html() -> bool:
    """HTML only for a client that prefers it to JSON, as a browser does; `*/*` is JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def index() -> Response:
    svc = service()
    model = svc.model
    status = "" if svc.ready else f"The model is not ready: {svc.load_error or 'draining'}"
    html = _INDEX.substitute(
        name=escape(svc.config.model_name),
        version=escape(svc.config.model_version),
        digest=escape(model.digest if model else "none"),
        status=escape(status),
    )
    return _answer(html.encode(), "text/html; charset=utf-8")


@bp.get("/page/<any(page.js, page.css, favicon.svg):name>")
def asset(name: str) -> Response:
    return _answer(_ASSETS[name], ASSETS[name])


def _answer(body: bytes, content_type: str) -> Response:
    response = Response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.vary.add("Accept")
    return response

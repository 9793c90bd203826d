"""Liveness and readiness (OIP paths, used by the Kubernetes probes) and the service root."""

from flask import Blueprint, jsonify

from app import __version__
from app.routes import page
from app.service import service

bp = Blueprint("health", __name__)


@bp.get("/v2/health/live")
def live():
    return jsonify(live=True)


@bp.get("/v2/health/ready")
def ready():
    is_ready = service().ready
    return jsonify(ready=is_ready), 200 if is_ready else 503


@bp.get("/")
def root():
    """The service info; the upload page for a browser (app/routes/page.py)."""
    if page.wants_html():
        return page.index()
    svc = service()
    model = svc.model
    return jsonify(
        service="ai-app",
        version=__version__,
        ready=svc.ready,
        model={
            "name": svc.config.model_name,
            "version": svc.config.model_version,
            "digest": model.digest if model else None,
        },
    )

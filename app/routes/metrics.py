"""`GET /metrics`: Prometheus text format, merged across gunicorn workers."""

from flask import Blueprint, Response

from app.service import service

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    body, content_type = service().metrics.exposition()
    return Response(body, content_type=content_type)

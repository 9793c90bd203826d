"""The service's own OpenAPI document."""

from flask import Blueprint, jsonify

from app.openapi import SPEC

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)

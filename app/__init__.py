"""The inference service: `gunicorn -c app/gunicorn.conf.py 'app:create_app()'`."""

import time

from flask import Flask, g, request

from app import connection, responses
from app.config import AppConfig, settings
from app.errors import register_error_handlers
from app.logs import configure_logging
from app.metrics import Metrics
from app.service import Service

__version__ = "0.1.0"
__all__ = ["create_app"]


def create_app(config: AppConfig | None = None) -> Flask:
    """Build the app for one worker: load the configured model version, register routes."""
    from app.routes import docs, health, oip, page, predict, v1

    configure_logging()
    config = config or settings().app
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes + 1  # see app/requests.py
    app.json = responses.StrictJSONProvider(app)
    service = Service(config=config, metrics=Metrics(config.metrics_dir))
    service.load()
    app.extensions["aiapp"] = service

    for blueprint in (health.bp, oip.bp, v1.bp, predict.bp, docs.bp, page.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    _instrument(app, service)
    app.after_request(responses.compress)
    app.after_request(connection.finish_body)
    return app


def _instrument(app: Flask, service: Service) -> None:
    """Request metrics by route template (low cardinality) and the model headers."""

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def finish(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        service.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        service.metrics.request_seconds.labels(route, request.method).observe(elapsed)
        response.headers["X-Model-Name"] = service.config.model_name
        response.headers["X-Model-Version"] = service.config.model_version
        if service.model:
            response.headers["X-Model-Digest"] = service.model.digest
        return response

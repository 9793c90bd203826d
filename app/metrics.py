"""Prometheus metrics, correct under gunicorn's workers (multiprocess mode).

With PROMETHEUS_MULTIPROC_DIR set (the image and chart set it), each worker writes its values
to files there and /metrics merges them; without it (tests, `flask run`) the app keeps its own
registry in memory.
"""

from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The service's metrics; one instance per app."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode values live in files, not in a registry.
        self._registry = None if self.multiprocess_dir else CollectorRegistry()
        registry = self._registry
        self.requests = Counter(
            "aiapp_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "aiapp_http_request_duration_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "aiapp_inference_duration_seconds",
            "Model run time per inference request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "aiapp_inference_batch_size",
            "Instances per inference request.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "aiapp_model_info",
            "The model version this service serves (always 1).",
            ["name", "version", "digest"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.model_ready = Gauge(
            "aiapp_model_ready",
            "1 when the model is loaded and the service is ready.",
            multiprocess_mode="min",
            registry=registry,
        )
        self.model_load_seconds = Gauge(
            "aiapp_model_load_seconds",
            "Time to load the model into the runtime.",
            multiprocess_mode="max",
            registry=registry,
        )
        self.fetch_bytes = Gauge(
            "aiapp_model_fetch_bytes",
            "Bytes of the model the loader installed.",
            multiprocess_mode="max",
            registry=registry,
        )
        self.fetch_seconds = Gauge(
            "aiapp_model_fetch_seconds",
            "Time the loader took to fetch and verify the model.",
            multiprocess_mode="max",
            registry=registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        else:
            registry = self._registry
        return generate_latest(registry), CONTENT_TYPE_LATEST

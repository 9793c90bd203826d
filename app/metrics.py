"""Prometheus metrics, correct under gunicorn's workers (multiprocess mode).

Each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR; the gunicorn master merges
them and serves them on METRICS_PORT (`serve`), a port of its own that the public Service
doesn't expose. A scrape is answered by a thread of the master: it never queues behind
inference, and it answers while every worker is busy, stuck or restarting. In-process (tests)
the app keeps its own registry in memory.
"""

from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The service's metrics; one instance per app."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        # In multiprocess mode values live in files, not in a registry.
        self.registry = None if multiprocess_dir else CollectorRegistry()
        registry = self.registry
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
        self.worker_up = Gauge(
            "aiapp_worker_up",
            "1 for each live worker (label pid); the master drops a dead one's (child_exit).",
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.worker_up.set(1)  # this process, until it exits
        self.fetch_seconds = Gauge(
            "aiapp_model_fetch_seconds",
            "Time the loader took to fetch and verify the model.",
            multiprocess_mode="max",
            registry=registry,
        )


def serve(multiprocess_dir: Path, host: str, port: int) -> WSGIServer:
    """Serve the workers' merged metrics on host:port (any path; Prometheus asks /metrics)
    from a daemon thread of this process. Raises OSError when it can't listen."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiprocess_dir))
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server

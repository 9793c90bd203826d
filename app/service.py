"""What the routes share: the config, the loaded model (or why it isn't), the metrics."""

import logging
import time
from dataclasses import dataclass

import numpy as np
from flask import current_app

from app.config import AppConfig
from app.drain import draining
from app.errors import ApiError
from app.metrics import Metrics
from app.model import Model, ModelLoadError, OnnxModel
from app.protocols import Inference

LOG = logging.getLogger("app")


@dataclass
class Service:
    config: AppConfig
    metrics: Metrics
    model: Model | None = None
    load_error: str | None = None

    @property
    def ready(self) -> bool:
        """Serving the model, and not draining for a shutdown."""
        return self.model is not None and not draining()

    def load(self) -> None:
        """Load the configured version; on failure stay up, not ready, and say why."""
        config = self.config
        try:
            self.model = OnnxModel(
                config.model_dir,
                config.model_name,
                config.model_version,
                config.model_digest,
                config.intra_op_threads,
            )
        except ModelLoadError as exc:
            self.load_error = str(exc)
            LOG.error("model not loaded: %s", exc)
            self.metrics.model_ready.set(0)
            return
        model = self.model
        self.metrics.model_info.labels(model.name, model.version, model.digest).set(1)
        self.metrics.model_ready.set(1)
        self.metrics.model_load_seconds.set(model.load_seconds)
        self.metrics.fetch_bytes.set(model.fetch_report.get("bytes", 0))
        self.metrics.fetch_seconds.set(model.fetch_report.get("seconds", 0))
        LOG.info(
            "model loaded: %s/%s digest %s in %.3fs",
            model.name,
            model.version,
            model.digest,
            model.load_seconds,
        )

    def require_model(self, name: str, version: str | None = None) -> Model:
        """The served model if `name` (and `version`, when given) are ours: 404 otherwise."""
        if name != self.config.model_name:
            raise ApiError(
                404, f"unknown model {name!r}; this service serves {self.config.model_name!r}"
            )
        if version is not None and version != self.config.model_version:
            raise ApiError(
                404,
                f"unknown version {version!r} of model {name!r}; this service "
                f"serves version {self.config.model_version!r}",
            )
        if self.model is None:
            raise ApiError(503, f"model {name!r} is not loaded: {self.load_error}")
        return self.model

    def run(self, inference: Inference) -> list[np.ndarray]:
        """The model's outputs for one decoded request, timed; its batch size is the first
        input's first dimension."""
        started = time.perf_counter()
        results = inference.model.predict(
            inference.inputs, [spec.name for spec in inference.outputs]
        )
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        first = next(iter(inference.inputs.values()))
        self.metrics.batch_size.observe(first.shape[0] if first.ndim else 1)
        return results


def service() -> Service:
    return current_app.extensions["aiapp"]

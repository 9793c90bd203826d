"""Settings, read once at start from the environment the chart sets, and validated there.

`python -m app.server` reads them before gunicorn is even imported (gunicorn parses
WEB_CONCURRENCY on import): a bad value stops the master before any worker boots, with one
line naming the variable and its value. Workers inherit the parsed settings when forked.
"""

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The contract's names (README "How the pieces fit"; the loader checks the same patterns).
NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?")
DIGEST = re.compile(r"([a-f0-9]{64})?")  # empty: no pin
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
INTEGER = re.compile(r"[0-9]{1,10}")  # no sign, no spaces, no 1e3, no 1_000
INT32_MAX = 2**31 - 1  # what gunicorn and onnxruntime take as an int
NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
# Pixels an image may declare before it is decoded (app/images.py): a 24-megapixel camera's
# 6000x4000 frame fits, and one decoded RGBA frame stays under 100 MB per worker thread.
MAX_IMAGE_PIXELS = 25_000_000


class SettingError(ValueError):
    """An unusable setting: the message names the variable and its value."""

    def __init__(self, name: str, value: str | None, expected: str) -> None:
        if value is None:
            super().__init__(f"{name} is not set")
        else:
            shown = value if len(value) <= 80 else value[:80] + "..."
            super().__init__(f"{name}={shown!r}: expected {expected}")


@dataclass(frozen=True)
class AppConfig:
    """What the Flask app needs: the model to serve and the request limits."""

    model_root: Path
    model_name: str
    model_version: str
    model_digest: str = ""
    max_batch_size: int = 64
    max_request_bytes: int = 1024 * 1024
    intra_op_threads: int = 1
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # PROMETHEUS_MULTIPROC_DIR: the workers' metrics, merged by the master (app/metrics.py);
    # None in-process (tests): the app keeps its own registry.
    metrics_dir: Path | None = None

    @property
    def model_dir(self) -> Path:
        return self.model_root / self.model_name / self.model_version


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment: gunicorn's part and the app's."""

    host: str
    port: int
    metrics_port: int  # the master's metrics listener, on the same host
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    drain_seconds: float
    cgroup_root: Path  # where the container's memory limit is read (app/memory.py)
    app: AppConfig

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def metrics_bind(self) -> tuple[str, int]:
        return self.host, self.metrics_port

    @classmethod
    def from_env(cls, env: Mapping[str, str], cpus: int) -> "Settings":
        """Parse and check every setting; SettingError names the first bad one."""
        workers = _integer(env, "WEB_CONCURRENCY", cpus, minimum=1)
        app = AppConfig(
            model_root=_path(env, "MODEL_ROOT", "/models"),
            model_name=_text(env, "MODEL_NAME", NAME, f"a model name, {NAME.pattern}, no '..'"),
            model_version=_text(
                env, "MODEL_VERSION", VERSION, f"a model version, {VERSION.pattern}, no '..'"
            ),
            model_digest=_text(env, "MODEL_DIGEST", DIGEST, "64 lowercase hex, or empty", ""),
            max_batch_size=_integer(env, "MAX_BATCH_SIZE", 64, minimum=1),
            max_request_bytes=_integer(env, "MAX_REQUEST_BYTES", 1024 * 1024, minimum=1),
            # onnxruntime threads per worker so that workers x threads never oversubscribe.
            intra_op_threads=_integer(env, "ORT_INTRA_OP_THREADS", max(1, cpus // workers), 1),
            max_image_pixels=_integer(env, "MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS, minimum=1),
            metrics_dir=_path(env, "PROMETHEUS_MULTIPROC_DIR", None, required=True),
        )
        port = _integer(env, "APP_PORT", 8080, minimum=1, maximum=65535)
        metrics_port = _integer(env, "METRICS_PORT", 9090, minimum=1, maximum=65535)
        if metrics_port == port:
            raw = env.get("METRICS_PORT", str(metrics_port))
            raise SettingError("METRICS_PORT", raw, f"a port other than APP_PORT={port}")
        return cls(
            host=_host(env, "APP_HOST", "0.0.0.0"),
            port=port,
            metrics_port=metrics_port,
            workers=workers,
            threads=_integer(env, "GUNICORN_THREADS", 4, minimum=1),
            timeout=_integer(env, "GUNICORN_TIMEOUT", 30, minimum=0),
            graceful_timeout=_integer(env, "GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=0),
            keepalive=_integer(env, "GUNICORN_KEEPALIVE", 5, minimum=0),
            drain_seconds=_seconds(env, "SHUTDOWN_DRAIN_SECONDS", 0.0),
            cgroup_root=_path(env, "CGROUP_ROOT", "/sys/fs/cgroup"),
            app=app,
        )


@functools.cache
def settings() -> Settings:
    """This process's settings, read once: the gunicorn master reads them before it forks."""
    return Settings.from_env(os.environ, available_cpus())


def available_cpus() -> int:
    """CPUs this container may use: the cgroup quota if any, else the affinity mask."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus


def _integer(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = INT32_MAX
) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise SettingError(name, raw, f"a whole number from {minimum} to {maximum}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    if not NUMBER.fullmatch(raw):
        raise SettingError(name, raw, "seconds, 0 or more (e.g. 10 or 2.5)")
    return float(raw)


def _text(
    env: Mapping[str, str],
    name: str,
    pattern: re.Pattern,
    expected: str,
    default: str | None = None,
) -> str:
    raw = env.get(name, default)
    if raw is None or not pattern.fullmatch(raw) or ".." in raw:
        raise SettingError(name, raw, expected)
    return raw


def _path(
    env: Mapping[str, str], name: str, default: str | None, required: bool = False
) -> Path | None:
    """An absolute path; unset is the default (None: not used), or an error if required."""
    raw = env.get(name, default)
    if raw is None and required:
        raise SettingError(name, None, "an absolute path")
    if raw is None:
        return None
    if not raw.startswith("/"):
        raise SettingError(name, raw, "an absolute path")
    return Path(raw)


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, default)
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not HOSTNAME.fullmatch(raw):
            raise SettingError(name, raw, "an IP address or a host name") from None
    return raw

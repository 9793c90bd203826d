"""`model_loader prefetch`: the fetch, then this node's state as Prometheus metrics until
SIGTERM or SIGINT. The chart runs it as a DaemonSet on the node cache (README, "Pre-staging
on every node"): its metrics port answers, so the pod is ready, only once the version is
installed on the node."""

import argparse
import os
import signal
from typing import TYPE_CHECKING

from model_loader.errors import UsageError
from model_loader.install import FetchReport
from model_loader.logs import log
from model_loader.names import validate_digest, validate_version

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def port(text: str) -> int:
    """An argparse type: a TCP port number."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def staged_version(text: str) -> tuple[str, str | None]:
    """VERSION or VERSION@DIGEST: a version kept beside the pinned one (UsageError if not)."""
    version, _, digest = text.partition("@")
    return validate_version(version), validate_digest(digest or None)


def metrics(reports: list[FetchReport], node: str) -> "CollectorRegistry":
    """The fetches' reports as gauges in a registry of their own, the first the pinned one."""
    from prometheus_client import CollectorRegistry, Gauge  # 50 ms: only the prefetcher pays

    registry = CollectorRegistry()
    info = Gauge(
        "aiapp_prefetch_info",
        "A version installed on this node (always 1): the pinned one, or one staged ahead.",
        ["name", "version", "digest", "node", "role"],
        registry=registry,
    )
    gauges = [
        Gauge(name, description, ["version"], registry=registry)
        for name, description in (
            ("aiapp_prefetch_fetched_bytes", "Bytes this fetch downloaded."),
            (
                "aiapp_prefetch_reused_bytes",
                "Bytes this install took from the node's store (0 when already installed).",
            ),
            ("aiapp_prefetch_seconds", "Time the fetch took."),
        )
    ]
    for index, report in enumerate(reports):
        role = "staged" if index else "pinned"
        info.labels(report.name, report.version, report.digest, node, role).set(1)
        values = (report.bytes_fetched, report.bytes_reused, report.seconds)
        for gauge, value in zip(gauges, values, strict=True):
            gauge.labels(report.version).set(value)
    return registry


def serve(reports: list[FetchReport], address: str, port: int) -> None:
    """Serve the reports' metrics on address:port (any path) from a daemon thread until
    SIGTERM or SIGINT. Whichever thread the signal lands on, its C handler writes it to
    the wakeup pipe the main thread reads: nothing to miss, no lock to find held."""
    from prometheus_client import start_http_server

    node = os.environ.get("NODE_NAME", "")
    registry = metrics(reports, node)
    wakeup, wakeup_end = os.pipe()
    os.set_blocking(wakeup_end, False)
    signal.set_wakeup_fd(wakeup_end)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        start_http_server(port, address, registry)
    except OSError as exc:  # in use, or an address this host doesn't have
        raise UsageError(f"metrics on {address}:{port}: {exc.strerror or exc}") from None
    for report in reports:
        log(
            "prefetch ready",
            node=node,
            name=report.name,
            version=report.version,
            digest=report.digest,
            cache_hit=report.cache_hit,
            bytes_fetched=report.bytes_fetched,
            bytes_reused=report.bytes_reused,
            seconds=report.seconds,
            metrics=f"{address}:{port}",
        )
    received = os.read(wakeup, 1)[0]
    log("prefetch stopped", node=node, signal=signal.Signals(received).name)

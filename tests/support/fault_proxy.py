"""A fault-injecting HTTP/1.1 proxy in front of a real Azurite, on loopback.

Point the loader at it with `Azurite(port=proxy.port).loader_env(...)`: the account name and
key are Azurite's, only the endpoint changes. GETs whose path contains `match` get the fault
the first `times` times, then pass through:

- reset:    forward `after_bytes` of the body, then abort the connection (TCP RST)
- busy:     answer 503 ServerBusy, as Blob Storage does when throttling, without forwarding
- stall:    forward `after_bytes`, then send nothing for `stall_seconds`, then close
- truncate: send the true Content-Length, then close cleanly (FIN) after `after_bytes`
- hold:     answer normally, but only once `until(proxy)` holds (at most `stall_seconds`):
            a download that lasts until other clients got somewhere, as a big one would

Every GET's response body bytes sent to the client are counted per blob path (`sent_bytes`,
the path without its query), faults or not: what crossed the network, for each blob; and the
GETs answered (`answered`, per path).
"""

import http.client
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local.net import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
BLOCK = 256 * 1024
SERVER_BUSY = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    b"<Message>The server is busy.</Message></Error>"
)


@dataclass
class Fault:
    kind: str  # reset | busy | stall | truncate | hold
    times: int = 1  # how many matching responses get it; a large number means always
    after_bytes: int = 1024 * 1024
    stall_seconds: float = 5.0
    until: Callable[["FaultProxy"], bool] | None = None  # hold: what the answer waits for


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client (the loader, mid-retry) dropping its connection is no error here."""


class FaultProxy:
    """Use as a context manager. Counts: `injected` faults, `forwarded` requests,
    `store_down`: requests that found the upstream unreachable (their connection is reset),
    `sent_bytes[path]`: body bytes of GET answers sent for each path, `answered[path]`: GETs
    answered in full."""

    def __init__(self, upstream_port: int, fault: Fault | None, match: str = "model.onnx"):
        self.upstream_port = upstream_port
        self.fault = fault
        self.match = match
        self.port = free_port()
        self.injected = 0
        self.forwarded = 0
        self.store_down = 0
        self.sent_bytes: dict[str, int] = {}
        self.answered: dict[str, int] = {}
        self._lock = threading.RLock()  # reentrant: a hold's `until` may read the counts
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None or method != "GET" or self.match not in path:
                return None
            if self.injected >= fault.times:
                return None
            self.injected += 1
            return fault

    def bytes_under(self, prefix: str) -> dict[str, int]:
        """`sent_bytes` of the paths that hold `prefix` (e.g. "/<container>/digits/2/"),
        keyed by what follows it; only paths that had bytes sent."""
        with self._lock:
            return {
                path.split(prefix, 1)[1]: count
                for path, count in self.sent_bytes.items()
                if prefix in path and count
            }

    def _count(self, method: str, path: str, count: int) -> None:
        if method == "GET":
            with self._lock:
                key = path.split("?", 1)[0]
                self.sent_bytes[key] = self.sent_bytes.get(key, 0) + count

    def _answer_done(self, method: str, path: str) -> None:
        if method == "GET":
            with self._changed:
                key = path.split("?", 1)[0]
                self.answered[key] = self.answered.get(key, 0) + 1
                self._changed.notify_all()

    def _hold(self, fault: Fault) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: fault.until(self) or self._stopping.is_set(), fault.stall_seconds
            )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.forward()

            do_HEAD = do_PUT = do_DELETE = do_POST = do_GET

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.take_fault(self.command, self.path)
                if fault and fault.kind == "busy":
                    self.answer_busy()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                except OSError:
                    with proxy._lock:
                        proxy.store_down += 1
                    self.abort()  # the store is down: the client sees its connection drop
                    return
                with proxy._lock:
                    proxy.forwarded += 1
                if fault and fault.kind == "hold":
                    proxy._hold(fault)
                    fault = None
                try:
                    self.relay(response, fault)
                finally:
                    upstream.close()
                proxy._answer_done(self.command, self.path)

            def relay(self, response: http.client.HTTPResponse, fault: Fault | None) -> None:
                chunked = response.getheader("Content-Length") is None
                payload = response.read() if chunked and self.command != "HEAD" else None
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                if payload is not None:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload is not None:
                    self.wfile.write(payload)
                    proxy._count(self.command, self.path, len(payload))
                    return
                if self.command == "HEAD":
                    return
                limit = fault.after_bytes if fault else None
                sent = 0
                while block := response.read(BLOCK if limit is None else min(BLOCK, limit - sent)):
                    self.wfile.write(block)
                    proxy._count(self.command, self.path, len(block))
                    sent += len(block)
                    if limit is not None and sent >= limit:
                        break
                if fault is None:
                    return
                if fault.kind == "reset":
                    self.abort()
                elif fault.kind == "stall":
                    proxy._stopping.wait(fault.stall_seconds)
                    self.close_connection = True
                elif fault.kind == "truncate":
                    self.close_connection = True

            def answer_busy(self) -> None:
                self.send_response_only(503, "Server Busy")
                self.send_header("Content-Type", "application/xml")
                self.send_header("x-ms-error-code", "ServerBusy")
                self.send_header("Content-Length", str(len(SERVER_BUSY)))
                self.end_headers()
                self.wfile.write(SERVER_BUSY)

            def abort(self) -> None:
                """Close with a TCP RST instead of a FIN."""
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True
                self.connection.close()

        return Handler

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._stopping.set()
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

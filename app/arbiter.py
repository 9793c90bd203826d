"""gunicorn's master with a drain on SIGTERM, so load balancers let go first.

On the first SIGTERM the master raises the drain flag (app/drain.py) and keeps serving for
SHUTDOWN_DRAIN_SECONDS: readiness answers 503, so the pod leaves the Service's endpoints, and
every response closes its connection, so kept-alive clients reconnect to another pod. Then
gunicorn stops as usual: listeners close, workers finish the requests in flight within
GUNICORN_GRACEFUL_TIMEOUT. A second SIGTERM, at any point of that, is a quick shutdown, as
SIGINT and SIGQUIT are: workers are told to quit, and those still busy are killed after
QUICK_SHUTDOWN_SECONDS.
"""

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.arbiter import Arbiter

from app.config import settings
from app.drain import DRAIN_FLAG_ENV

QUICK_SHUTDOWN_SECONDS = 2  # gunicorn's own limit once a quick shutdown is asked mid-stop


class DrainingArbiter(Arbiter):
    def __init__(self, app: WSGIApplication) -> None:
        super().__init__(app)
        self.drain_seconds = settings().drain_seconds
        self.drain_deadline: float | None = None
        self.terminating = False  # a SIGTERM arrived
        self.quick = False  # and then another one
        directory = self.cfg.worker_tmp_dir or tempfile.gettempdir()
        self.drain_flag = Path(directory) / f"ai-app-{os.getpid()}.draining"
        self.drain_flag.unlink(missing_ok=True)
        os.environ[DRAIN_FLAG_ENV] = str(self.drain_flag)  # inherited by every worker

    def signal(self, sig: int, frame) -> None:
        """Queue the signal, as gunicorn does; a second SIGTERM is queued as a SIGQUIT."""
        if sig == signal.SIGTERM and self.terminating:
            sig, self.quick = signal.SIGQUIT, True
        self.terminating = self.terminating or sig == signal.SIGTERM
        super().signal(sig, frame)

    def handle_term(self) -> None:
        if self.drain_seconds <= 0:
            raise StopIteration
        self.drain_flag.touch()
        self.drain_deadline = time.monotonic() + self.drain_seconds
        self.log.info("SIGTERM: draining for %.1fs before stopping", self.drain_seconds)

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self.drain_deadline is not None:
            timeout = max(0.0, min(timeout, self.drain_deadline - time.monotonic()))
        return super().wait_for_signals(timeout)

    def manage_workers(self) -> None:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.log.info("drained: closing the listeners")
            raise StopIteration
        super().manage_workers()

    def stop(self, graceful: bool = True) -> None:
        """gunicorn's stop. A quick one (SIGINT, SIGQUIT, a second SIGTERM, even one that came
        with the first) kills workers still busy after QUICK_SHUTDOWN_SECONDS, not after
        graceful_timeout; gunicorn itself does that only for a signal that comes mid-stop."""
        if self.quick or not graceful:
            self.cfg.set("graceful_timeout", min(self.cfg.graceful_timeout, QUICK_SHUTDOWN_SECONDS))
        super().stop(graceful and not self.quick)

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        self.drain_flag.unlink(missing_ok=True)
        super().halt(reason, exit_status)


class InferenceServer(WSGIApplication):
    """gunicorn's own command line, run by the draining arbiter."""

    def run(self) -> None:
        if self.cfg.print_config or self.cfg.check_config:
            super().run()
        try:
            DrainingArbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.exit(1)

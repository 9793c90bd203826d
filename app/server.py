"""The serving entry point: gunicorn, with a drain on SIGTERM so load balancers let go first.

    python -m app.server -c app/gunicorn.conf.py 'app:create_app()'

On the first SIGTERM the master raises the drain flag (a file the workers can see) and keeps
serving for SHUTDOWN_DRAIN_SECONDS: readiness answers 503, so the pod leaves the Service's
endpoints, and every response closes its connection, so kept-alive clients reconnect to
another pod. Then gunicorn stops as usual: listeners close, workers finish the requests in
flight within graceful_timeout. A second SIGTERM, SIGINT or SIGQUIT stops without the drain.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.arbiter import Arbiter

DRAIN_FLAG_ENV = "APP_DRAIN_FLAG"
DRAIN_SECONDS_ENV = "SHUTDOWN_DRAIN_SECONDS"


def draining() -> bool:
    """True in a worker once its master has started to drain."""
    flag = os.environ.get(DRAIN_FLAG_ENV)
    return bool(flag) and os.path.exists(flag)


class DrainingArbiter(Arbiter):
    def __init__(self, app: WSGIApplication) -> None:
        super().__init__(app)
        self.drain_seconds = float(os.environ.get(DRAIN_SECONDS_ENV, "0"))
        self.drain_deadline: float | None = None
        directory = self.cfg.worker_tmp_dir or tempfile.gettempdir()
        self.drain_flag = Path(directory) / f"ai-app-{os.getpid()}.draining"
        self.drain_flag.unlink(missing_ok=True)
        os.environ[DRAIN_FLAG_ENV] = str(self.drain_flag)  # inherited by every worker

    def handle_term(self) -> None:
        if self.drain_deadline is not None or self.drain_seconds <= 0:
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


def main() -> None:
    InferenceServer("%(prog)s [OPTIONS] [APP_MODULE]", prog="ai-app-server").run()


if __name__ == "__main__":
    main()

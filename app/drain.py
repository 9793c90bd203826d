"""The drain flag: a file the gunicorn master creates on the first SIGTERM (app/arbiter.py)
and every worker can see, so readiness fails while requests are still served."""

import os

DRAIN_FLAG_ENV = "APP_DRAIN_FLAG"  # set by the master for its workers, not a setting


def draining() -> bool:
    """True in a worker once its master has started to drain."""
    flag = os.environ.get(DRAIN_FLAG_ENV)
    return bool(flag) and os.path.exists(flag)

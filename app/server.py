"""The serving entry point: gunicorn with a drain on SIGTERM (app/arbiter.py).

    python -m app.server -c app/gunicorn.conf.py 'app:create_app()'

Every setting is read and checked first (app/config.py), before gunicorn is imported, and so
is the room the workers need for the model (app/memory.py): a bad setting, or a memory limit
the model can't fit, is one line on stderr and exit 2, before any worker boots.
"""

import sys

from app.config import SettingError, settings
from app.memory import MemoryTooSmall, check_memory

PROG = "ai-app-server"


def main() -> None:
    try:
        check_memory(settings())
    except (SettingError, MemoryTooSmall) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    from app.arbiter import InferenceServer  # gunicorn reads WEB_CONCURRENCY on import

    InferenceServer("%(prog)s [OPTIONS] [APP_MODULE]", prog=PROG).run()


if __name__ == "__main__":
    main()

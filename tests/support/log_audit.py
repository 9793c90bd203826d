"""No secret in any log: every log a test captures from the loader, the app or the pod is
checked here, against every secret the session's tests used, as it is captured.

A hit raises AssertionError naming where and which secret (by its label, never its value).
Each secret is looked for whole and by its secret part (a SAS's signature, a key's first 16
characters), raw and URL-encoded.
"""

import threading
from urllib.parse import quote

from local.azurite import ACCOUNT_KEY

_secrets: dict[str, str] = {}
_lock = threading.Lock()
totals = {"logs": 0, "lines": 0}


def register_secret(label: str, value: str) -> str:
    """Remember a secret a test uses (an account key, a SAS, a token); returns it."""
    with _lock:
        _secrets[value] = label
    return value


register_secret("Azurite account key", ACCOUNT_KEY)


def _needles(secret: str) -> set[str]:
    part = secret.split("sig=")[1].split("&")[0] if "sig=" in secret else secret[:16]
    return {form for value in (secret, part) for form in (value, quote(value, safe=""))}


def audit(source: str, text: str) -> str:
    """Check one captured log; returns it unchanged so callers can wrap their reads."""
    with _lock:
        secrets = dict(_secrets)
        totals["logs"] += 1
        totals["lines"] += text.count("\n") + 1
    for secret, label in secrets.items():
        if any(needle in text for needle in _needles(secret)):
            raise AssertionError(f"the {label} appears in the log of {source}")
    return text

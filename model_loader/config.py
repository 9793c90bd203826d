"""Settings read once from the CLI and the environment (the chart sets the same names)."""

import os
from dataclasses import dataclass, field

from model_loader.errors import UsageError

AUTH_MODES = ("auto", "connection-string", "sas", "identity", "anonymous")
TRUST_RULES = ("stat", "full")
MIB = 1024 * 1024


@dataclass(frozen=True)
class StorageSettings:
    """Where the models live and how to authenticate. Secrets never appear in repr()."""

    container: str = "models"
    auth: str = "auto"
    account_url: str | None = None
    connection_string: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, container: str | None, auth: str | None, account_url: str | None):
        env = os.environ
        auth = auth or env.get("AZURE_STORAGE_AUTH") or "auto"
        if auth not in AUTH_MODES:
            raise UsageError(f"invalid auth mode {auth!r}: one of {', '.join(AUTH_MODES)}")
        return cls(
            container=container or env.get("MODEL_CONTAINER") or "models",
            auth=auth,
            account_url=account_url or env.get("AZURE_STORAGE_ACCOUNT_URL") or None,
            connection_string=env.get("AZURE_STORAGE_CONNECTION_STRING") or None,
            sas_token=env.get("AZURE_STORAGE_SAS_TOKEN") or None,
        )


@dataclass(frozen=True)
class TransferSettings:
    """Tuning for an init container: parallel files, parallel ranges, short retries."""

    file_concurrency: int = 2
    range_concurrency: int = 4
    chunk_bytes: int = 8 * MIB
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retries: int = 5
    backoff_seconds: float = 0.5
    progress_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> "TransferSettings":
        """Each field from MODEL_FETCH_<FIELD> when set, e.g. MODEL_FETCH_RANGE_CONCURRENCY."""
        values = {}
        for name, default in cls().__dict__.items():
            raw = os.environ.get(f"MODEL_FETCH_{name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                value = type(default)(raw)
            except ValueError:
                raise UsageError(f"MODEL_FETCH_{name.upper()}={raw!r} is not a number") from None
            if value < 0 or (value == 0 and name not in ("retries",)):
                raise UsageError(f"MODEL_FETCH_{name.upper()}={raw!r} must be positive")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class CacheSettings:
    """How a fetch trusts an installed version and trims the root afterwards (README, "The
    content store"): `keep` versions of the model, at most `max_bytes` in all (0: no bound)."""

    keep: int = 3
    max_bytes: int = 0
    verify: str = "stat"

    @classmethod
    def from_env(
        cls, keep: int | None = None, max_bytes: int | None = None, verify: str | None = None
    ) -> "CacheSettings":
        """Arguments first, then MODEL_CACHE_KEEP, MODEL_CACHE_MAX_BYTES, MODEL_CACHE_VERIFY."""
        env = os.environ
        verify = verify or env.get("MODEL_CACHE_VERIFY") or cls.verify
        if verify not in TRUST_RULES:
            raise UsageError(f"MODEL_CACHE_VERIFY={verify!r}: one of {', '.join(TRUST_RULES)}")
        return cls(
            keep=_count("MODEL_CACHE_KEEP", keep, env, cls.keep, minimum=1),
            max_bytes=_count("MODEL_CACHE_MAX_BYTES", max_bytes, env, cls.max_bytes, minimum=0),
            verify=verify,
        )


def _count(name: str, given: int | None, env, default: int, minimum: int) -> int:
    raw = given if given is not None else env.get(name) or default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise UsageError(f"{name}={raw!r} must be at least {minimum}")
    return value

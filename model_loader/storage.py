"""The Blob client: authentication, retries tuned for an init container, error translation."""

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry

from model_loader.config import StorageSettings, TransferSettings
from model_loader.errors import (
    AuthError,
    LoaderError,
    NotFoundError,
    TransientError,
    UsageError,
)
from model_loader.logs import log

BACKOFF_GROWTH = 1.5
READ_BLOCK_BYTES = 1024 * 1024
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def container_client(storage: StorageSettings, transfer: TransferSettings) -> ContainerClient:
    """A ContainerClient for the chosen auth mode (auto: connection string, SAS, identity)."""
    options = {
        "retry_policy": retry_policy(transfer),
        "connection_timeout": transfer.connect_timeout,
        # azure-core reads responses 4 KiB at a time by default: far too CPU-hungry for GiBs.
        "connection_data_block_size": READ_BLOCK_BYTES,
        "read_timeout": transfer.read_timeout,
        "max_single_get_size": transfer.chunk_bytes,
        "max_chunk_get_size": transfer.chunk_bytes,
        "max_single_put_size": 4 * transfer.chunk_bytes,
        "max_block_size": transfer.chunk_bytes,
    }
    mode = _resolve_auth(storage)
    log("blob client", auth=mode, container=storage.container, account_url=storage.account_url)
    try:
        if mode == "connection-string":
            if not storage.connection_string:
                raise UsageError("auth connection-string: AZURE_STORAGE_CONNECTION_STRING is unset")
            service = BlobServiceClient.from_connection_string(storage.connection_string, **options)
        else:
            account_url = _require_account_url(storage, mode)
            service = BlobServiceClient(account_url, _credential(storage, mode), **options)
    except ValueError:
        # The SDK's message may quote the secret: name the setting, never its value.
        raise UsageError(f"auth {mode}: the account URL or credential is malformed") from None
    return service.get_container_client(storage.container)


def retry_policy(transfer: TransferSettings) -> ExponentialRetry:
    """Retry n waits backoff + 1.5**n seconds, give or take `backoff` of jitter: with the
    defaults about 2.0, 2.8, 3.9, 5.6 and 8.1 s (22 s over 5 retries), where the SDK's
    default waits 18, 24 and 42 s. The SDK stops at whichever of its four counters runs out
    first (total, connect, read, status; each 3 unless set), so all four get the setting."""
    retries = transfer.retries
    return ExponentialRetry(
        initial_backoff=transfer.backoff_seconds,
        increment_base=BACKOFF_GROWTH,
        retry_total=retries,
        retry_connect=retries,
        retry_read=retries,
        retry_status=retries,
        random_jitter_range=transfer.backoff_seconds,
    )


def _resolve_auth(storage: StorageSettings) -> str:
    if storage.auth != "auto":
        return storage.auth
    if storage.connection_string:
        return "connection-string"
    if storage.sas_token:
        return "sas"
    if storage.account_url:
        return "identity"
    raise UsageError(
        "no storage configured: set AZURE_STORAGE_CONNECTION_STRING, or "
        "AZURE_STORAGE_ACCOUNT_URL (with AZURE_STORAGE_SAS_TOKEN or a workload identity)"
    )


def _require_account_url(storage: StorageSettings, mode: str) -> str:
    if not storage.account_url:
        raise UsageError(f"auth {mode}: AZURE_STORAGE_ACCOUNT_URL (--account-url) is unset")
    return storage.account_url


def _credential(storage: StorageSettings, mode: str) -> object:
    match mode:
        case "sas":
            if not storage.sas_token:
                raise UsageError("auth sas: AZURE_STORAGE_SAS_TOKEN is unset")
            return storage.sas_token.lstrip("?")
        case "identity":
            from azure.identity import DefaultAzureCredential

            # Covers AKS workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID,
            # AZURE_FEDERATED_TOKEN_FILE), managed identity, and a developer's az login.
            return DefaultAzureCredential(exclude_interactive_browser_credential=True)
        case _:
            return None  # anonymous: public read access


@contextlib.contextmanager
def blob_errors(what: str) -> Iterator[None]:
    """Translate SDK and network errors about `what` (a blob or container) into ours."""
    try:
        yield
    except LoaderError:
        raise
    except ResourceNotFoundError as exc:
        raise NotFoundError(f"{what}: not found ({_code(exc)})") from None
    except ResourceExistsError as exc:
        raise UsageError(f"{what}: already exists ({_code(exc)})") from None
    except ClientAuthenticationError as exc:
        raise AuthError(f"{what}: access denied ({_code(exc)})") from None
    except IncompleteReadError:
        raise TransientError(f"{what}: the body was cut off, after retries") from None
    except HttpResponseError as exc:
        status = exc.status_code
        if status is None:  # the connection failed while the body streamed
            raise TransientError(f"{what}: {type(exc).__name__} after retries") from None
        if status in (401, 403):
            raise AuthError(f"{what}: access denied (HTTP {status} {_code(exc)})") from None
        if status == 404:
            raise NotFoundError(f"{what}: not found (HTTP 404 {_code(exc)})") from None
        if status in TRANSIENT_STATUS:
            raise TransientError(f"{what}: HTTP {status} after retries ({_code(exc)})") from None
        raise UsageError(f"{what}: rejected with HTTP {status} ({_code(exc)})") from None
    except (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError) as exc:
        raise TransientError(f"{what}: {type(exc).__name__} after retries") from None
    except AzureError as exc:
        raise TransientError(f"{what}: {type(exc).__name__} after retries") from None


def _code(exc: HttpResponseError) -> str:
    return str(getattr(exc, "error_code", None) or exc.reason or "no detail")

"""The Blob client module in-process: which credential each setting picks, and the one exit
code each failure of the SDK or the network maps to (test_fetch.py and test_retries.py
prove the same against real servers, for the cases a server can be made to produce)."""

import pytest
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

from local.azurite import Azurite
from model_loader import storage
from model_loader.config import StorageSettings, TransferSettings
from model_loader.errors import (
    AuthError,
    LoaderError,
    NotFoundError,
    TransientError,
    UsageError,
)

ACCOUNT_URL = "https://account.blob.core.windows.net"


@pytest.mark.parametrize(
    ("settings", "mode"),
    [
        (
            {"connection_string": "c", "sas_token": "s", "account_url": ACCOUNT_URL},
            "connection-string",
        ),
        ({"sas_token": "s", "account_url": ACCOUNT_URL}, "sas"),
        ({"account_url": ACCOUNT_URL}, "identity"),
        ({"auth": "anonymous", "connection_string": "c"}, "anonymous"),
    ],
)
def test_auto_prefers_a_connection_string_then_a_sas_then_identity(settings, mode):
    assert storage._resolve_auth(StorageSettings(**settings)) == mode


def test_no_storage_setting_at_all_is_a_usage_error_naming_the_variables():
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACC"):
        storage._resolve_auth(StorageSettings())


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"auth": "connection-string"}, "AZURE_STORAGE_CONNECTION_STRING is unset"),
        ({"auth": "sas"}, "auth sas: AZURE_STORAGE_ACCOUNT_URL (--account-url) is unset"),
        ({"auth": "sas", "account_url": ACCOUNT_URL}, "auth sas: AZURE_STORAGE_SAS_TOKEN is unset"),
        ({"auth": "identity"}, "auth identity: AZURE_STORAGE_ACCOUNT_URL"),
        ({"auth": "connection-string", "connection_string": "AccountKey=x;bogus"}, "malformed"),
    ],
)
def test_a_chosen_mode_without_its_settings_is_a_usage_error(settings, says):
    with pytest.raises(UsageError) as refused:
        storage.container_client(StorageSettings(**settings), TransferSettings())

    assert says in str(refused.value)


def test_identity_uses_azure_identitys_default_chain_and_anonymous_no_credential():
    settings = StorageSettings(account_url=ACCOUNT_URL)

    credential = storage._credential(settings, "identity")
    assert type(credential).__name__ == "DefaultAzureCredential"
    chain = [type(link).__name__ for link in credential.credentials]
    assert "WorkloadIdentityCredential" in chain or "EnvironmentCredential" in chain
    assert "InteractiveBrowserCredential" not in chain  # an init container can't log in
    anonymous = StorageSettings(auth="anonymous", account_url=ACCOUNT_URL)
    client = storage.container_client(anonymous, TransferSettings())
    assert client.credential is None and client.url.startswith(ACCOUNT_URL)


def test_a_sas_token_is_used_without_its_leading_question_mark():
    settings = StorageSettings(auth="sas", account_url=ACCOUNT_URL, sas_token="?sv=1&sig=abc")

    assert storage._credential(settings, "sas") == "sv=1&sig=abc"
    assert storage._credential(StorageSettings(), "anonymous") is None


def test_the_client_carries_the_transfer_settings(azurite: Azurite):
    transfer = TransferSettings(chunk_bytes=3 * 1024 * 1024, connect_timeout=7.0, read_timeout=9.0)
    settings = StorageSettings(container="models", connection_string=azurite.connection_string())

    client = storage.container_client(settings, transfer)

    assert client.container_name == "models"
    assert client._config.max_single_get_size == 3 * 1024 * 1024
    assert client._config.max_chunk_get_size == 3 * 1024 * 1024
    assert client._config.max_block_size == 3 * 1024 * 1024
    assert client._config.max_single_put_size == 12 * 1024 * 1024
    transport = client._config.transport
    assert transport.connection_config.timeout == 7.0
    assert transport.connection_config.read_timeout == 9.0
    assert transport.connection_config.data_block_size == 1024 * 1024


def status_error(
    status: int | None, code: str | None = "SomeCode", reason: str | None = None
) -> HttpResponseError:
    """What the SDK raises for an answer with this status (and error code, or reason)."""
    error = HttpResponseError(message="refused")
    error.status_code, error.error_code, error.reason = status, code, reason
    return error


@pytest.mark.parametrize(
    ("raised", "expected", "says"),
    [
        (ResourceNotFoundError(message="x"), NotFoundError, "m/b: not found"),
        (ResourceExistsError(message="x"), UsageError, "m/b: already exists"),
        (ClientAuthenticationError(message="x"), AuthError, "m/b: access denied"),
        (IncompleteReadError(message="x"), TransientError, "m/b: the body was cut off"),
        (status_error(None), TransientError, "m/b: HttpResponseError after retries"),
        (status_error(401), AuthError, "access denied (HTTP 401 SomeCode)"),
        (status_error(403), AuthError, "access denied (HTTP 403 SomeCode)"),
        (status_error(404), NotFoundError, "not found (HTTP 404 SomeCode)"),
        (status_error(408), TransientError, "HTTP 408 after retries (SomeCode)"),
        (status_error(429), TransientError, "HTTP 429 after retries"),
        (status_error(500), TransientError, "HTTP 500 after retries"),
        (status_error(502), TransientError, "HTTP 502 after retries"),
        (status_error(503), TransientError, "HTTP 503 after retries"),
        (status_error(504), TransientError, "HTTP 504 after retries"),
        (status_error(400, None, "Bad Request"), UsageError, "rejected with HTTP 400 (Bad Re"),
        (status_error(409, None), UsageError, "rejected with HTTP 409 (no detail)"),
        (status_error(501), UsageError, "rejected with HTTP 501"),
        (ServiceRequestError(message="x"), TransientError, "m/b: ServiceRequestError after"),
        (ServiceResponseError(message="x"), TransientError, "m/b: ServiceResponseError after"),
        (ConnectionResetError(), TransientError, "m/b: ConnectionResetError after retries"),
        (TimeoutError(), TransientError, "m/b: TimeoutError after retries"),
        (AzureError("x"), TransientError, "m/b: AzureError after retries"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_failure_maps_to_one_error_of_ours_naming_the_blob(raised, expected, says):
    with pytest.raises(LoaderError) as mapped, storage.blob_errors("m/b"):
        raise raised

    assert type(mapped.value) is expected
    assert says in str(mapped.value)


def test_our_own_errors_pass_through_unchanged():
    ours = NotFoundError("already ours")

    with pytest.raises(NotFoundError) as passed, storage.blob_errors("m/b"):
        raise ours

    assert passed.value is ours


def test_anything_else_is_not_swallowed():
    with pytest.raises(KeyError), storage.blob_errors("m/b"):
        raise KeyError("a bug of ours")

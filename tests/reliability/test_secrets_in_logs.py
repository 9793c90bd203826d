"""The log audit that every test's captured logs pass through (tests/support/log_audit.py)
finds a secret in every form it could leak in; the loader and the app, run with secrets in
their environment, log none of them."""

from urllib.parse import quote

import pytest

from local.azurite import ACCOUNT_KEY
from tests.support.gunicorn_server import GunicornServer
from tests.support.loader_cli import run_loader
from tests.support.log_audit import audit, register_secret, totals

SAS = register_secret(
    "test SAS", "se=2030-01-01&sp=rl&sv=2025-01-05&sr=c&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
)


@pytest.mark.parametrize(
    "leak",
    [
        f"connection string AccountKey={ACCOUNT_KEY};",
        f'{{"key": "{quote(ACCOUNT_KEY, safe="")}"}}',
        f"key starts {ACCOUNT_KEY[:16]}",
        f"GET /models?{SAS}",
        "signature c2VjcmV0LXNpZ25hdHVyZQ%3D%3D only",
    ],
    ids=["key", "url-encoded key", "key prefix", "sas", "sas signature"],
)
def test_the_audit_finds_a_planted_secret(leak):
    with pytest.raises(AssertionError, match=r"appears in the log of planted") as found:
        audit("planted", f"line one\n{leak}\nline three")

    assert ACCOUNT_KEY not in str(found.value) and SAS not in str(found.value)


def test_the_loader_logs_no_secret_on_success_or_failure(azurite, tmp_path):
    env = azurite.loader_env(
        AZURE_STORAGE_SAS_TOKEN=SAS, AZURE_STORAGE_ACCOUNT_URL=azurite.account_url
    )
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.onnx").write_bytes(b"weights")
    checked = totals["logs"]

    runs = [
        run_loader(env, "publish", str(source), "--name", "audit", "--version", "1"),
        run_loader(env, "fetch", "--name", "audit", "--version", "1", "--dest", str(tmp_path)),
        run_loader(env, "fetch", "--name", "audit", "--version", "9", "--dest", str(tmp_path)),
        run_loader({**env, "AZURE_STORAGE_AUTH": "sas"}, "list", "--name", "audit"),
    ]

    assert [run.returncode for run in runs] == [0, 0, 3, 4]  # the SAS is not Azurite's
    assert totals["logs"] == checked + 2 * len(runs)  # stdout and stderr of each, audited


@pytest.mark.slow
def test_the_app_logs_no_secret_from_its_environment(sample):
    env = {**sample["env"], "AZURE_STORAGE_SAS_TOKEN": SAS, "EXTRA_KEY": ACCOUNT_KEY}
    with GunicornServer(env, workers=1) as server:
        logs = server.logs()

    assert "Booting worker" in logs  # the audit read the real log

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from local.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from tests.support.log_audit import register_secret


def publish(loader, model_dir, version: str) -> str:
    result = loader("publish", str(model_dir), "--name", "digits", "--version", version)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_list_shows_complete_versions_with_digests(loader, container, model_dir):
    digests = {version: publish(loader, model_dir, version) for version in ("1", "2")}
    container.upload_blob("digits/3/model.onnx", b"incomplete: no manifest yet")

    plain = loader("list", "--name", "digits")
    as_json = loader("list", "--name", "digits", "--json")

    assert plain.returncode == 0 and as_json.returncode == 0
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    # Lists, not dicts: a version printed twice must show as twice.
    assert [(row["version"], row["digest"]) for row in rows] == list(digests.items())
    assert [line.split("\t")[:2] for line in plain.stdout.splitlines()] == [
        [version, digest] for version, digest in digests.items()
    ]
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert all(row["created"] and row["bytes"] == total for row in rows)
    assert "skipping" not in as_json.stderr  # digits/3 has no manifest: not even read


def test_check_is_the_release_preflight(loader, model_dir):
    digest = publish(loader, model_dir, "1")

    present = loader("check", "--name", "digits", "--version", "1", "--digest", digest)
    missing = loader("check", "--name", "digits", "--version", "2")
    other = loader("check", "--name", "digits", "--version", "1", "--digest", "f" * 64)

    assert (present.returncode, present.stdout.strip()) == (0, digest)
    assert missing.returncode == 3 and "digits/2" in missing.error_line
    assert other.returncode == 5 and digest in other.error_line


def test_verify_detects_a_tampered_install_offline(loader, model_dir, tmp_path):
    digest = publish(loader, model_dir, "1")
    assert (
        loader("fetch", "--name", "digits", "--version", "1", "--dest", str(tmp_path)).returncode
        == 0
    )
    installed = tmp_path / "digits" / "1"

    assert loader("verify", str(installed)).stdout.strip() == digest
    with (installed / "model.onnx").open("r+b") as handle:
        handle.write(b"\x00")
    tampered = loader("verify", str(installed))

    assert tampered.returncode == 5 and "model.onnx" in tampered.error_line
    assert loader("verify", str(tmp_path / "nothing")).returncode == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fetch", "--version", "1", "--dest", "/tmp/x"], "--name is required"),
        (["fetch", "--name", "digits", "--dest", "/tmp/x"], "--version is required"),
        (["fetch", "--name", "digits", "--version", "1"], "--dest is required"),
        (
            ["fetch", "--name", "digits", "--version", "1", "--dest", "/tmp/x", "--digest", "abc"],
            "invalid digest 'abc'",
        ),
        (
            ["fetch", "--name", "digits", "--version", "1", "--dest", "/tmp/x", "--auth", "magic"],
            "invalid choice: 'magic'",
        ),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(loader, args, expected):
    result = loader(*args)

    assert result.returncode == 2
    assert expected in result.error_line


def test_bad_tuning_value_exits_2_naming_the_variable(loader, tmp_path):
    result = loader(
        "fetch",
        "--name",
        "d",
        "--version",
        "1",
        "--dest",
        str(tmp_path),
        env={"MODEL_FETCH_RANGE_CONCURRENCY": "many"},
    )

    assert result.returncode == 2
    assert "MODEL_FETCH_RANGE_CONCURRENCY" in result.error_line


def test_identity_auth_without_account_url_exits_2(loader, tmp_path):
    result = loader(
        "fetch", "--name", "d", "--version", "1", "--dest", str(tmp_path), "--auth", "identity"
    )

    assert result.returncode == 2
    assert "AZURE_STORAGE_ACCOUNT_URL" in result.error_line


def test_sas_token_with_account_url_fetches_without_a_connection_string(
    loader, azurite, container, model_dir, tmp_path
):
    digest = publish(loader, model_dir, "1")
    sas = register_secret(
        "container SAS",
        generate_container_sas(
            ACCOUNT_NAME,
            container.container_name,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": "",
        "AZURE_STORAGE_SAS_TOKEN": sas,
        "AZURE_STORAGE_ACCOUNT_URL": azurite.account_url,
    }

    result = loader(
        "fetch",
        "--name",
        "digits",
        "--version",
        "1",
        "--digest",
        digest,
        "--dest",
        str(tmp_path),
        env=env,
    )
    denied = loader("publish", str(model_dir), "--name", "digits", "--version", "2", env=env)

    assert result.returncode == 0, result.stderr
    assert '"auth": "sas"' in result.stderr
    assert denied.returncode == 4  # a read-only SAS cannot publish
    for output in (result.stdout, result.stderr, denied.stdout, denied.stderr):
        assert sas not in output and sas.split("sig=")[-1] not in output


def test_no_secret_appears_in_any_output(loader, azurite, model_dir, tmp_path):
    outputs = [
        loader("publish", str(model_dir), "--name", "digits", "--version", "1"),
        loader("fetch", "--name", "digits", "--version", "1", "--dest", str(tmp_path)),
        loader("list", "--name", "digits"),
        loader("check", "--name", "digits", "--version", "9"),
        loader(
            "list",
            "--name",
            "digits",
            env={"AZURE_STORAGE_CONNECTION_STRING": "AccountKey=" + ACCOUNT_KEY + ";bogus"},
        ),
    ]

    assert outputs[-1].returncode == 2
    for result in outputs:
        assert ACCOUNT_KEY not in result.stdout + result.stderr
        assert ACCOUNT_KEY[:20] not in result.stdout + result.stderr

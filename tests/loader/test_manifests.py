"""Manifests the loader must refuse, published straight to Azurite with the SDK (no publish
would write them): exit 5 with one line naming what is wrong, for fetch, check, verify, and
list skips them; nothing is installed, and the read is bounded. Every case of BAD is refused
by the parser with its message (test_manifest.py, in-process); the CLI runs here take one
case of each way a manifest is refused (decoding, structure, a field, an entry, a path)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from model_loader.manifest import MAX_MANIFEST_BYTES
from tests.support.loader_cli import REPO_ROOT, LoaderRun
from tests.support.log_audit import audit

MIB = 1024 * 1024
WEIGHTS = b"onnx"
ENTRY = {"path": "model.onnx", "size": len(WEIGHTS), "sha256": hashlib.sha256(WEIGHTS).hexdigest()}
DEPTH = 100_000


def manifest(**changes: object) -> bytes:
    """A valid manifest of digits/1 with `changes` applied (None deletes a key)."""
    body = {
        "schema_version": 1,
        "name": "digits",
        "version": "1",
        "format": "onnx",
        "created": "2026-11-24T00:00:00Z",
        "publisher": "mallory",
        "files": [ENTRY],
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def entry(**changes: object) -> dict:
    return {k: v for k, v in {**ENTRY, **changes}.items() if v is not None}


NESTED = b'{"schema_version": 1, "files": ' + b"[" * DEPTH + b"]" * DEPTH + b"}"
# id: (manifest bytes, what the one error line must say)
BAD = {
    "nested 100000 deep": (NESTED, "nested too deeply"),
    "NUL byte in a path": (manifest(files=[entry(path="model\x00.onnx")]), "control character"),
    "a file and a directory": (
        manifest(files=[entry(path="a"), entry(path="a/b")]),
        "'a' is both a file and a directory",
    ),
    "no files": (manifest(files=[]), "lists no files"),
    "duplicate path": (manifest(files=[ENTRY, ENTRY]), "duplicate file path 'model.onnx'"),
    "'.' component": (manifest(files=[entry(path="a/./b")]), "refused file path 'a/./b'"),
    "empty component": (manifest(files=[entry(path="a//b")]), "refused file path 'a//b'"),
    "trailing slash": (manifest(files=[entry(path="a/")]), "refused file path 'a/'"),
    "backslash": (manifest(files=[entry(path="a\\b")]), "refused file path 'a\\\\b'"),
    "component over 255 bytes": (manifest(files=[entry(path="é" * 128)]), "255 bytes"),
    "lone surrogate": (manifest(files=[entry(path="\ud800")]), "not valid UTF-8"),
    "absurd size": (manifest(files=[entry(size=10**20)]), "size"),
    "negative size": (manifest(files=[entry(size=-1)]), "size"),
    "size a string": (manifest(files=[entry(size="4")]), "size"),
    "size a float": (manifest(files=[entry(size=4.0)]), "size"),
    "size NaN": (manifest(files=[entry(size=float("nan"))]), "size"),
    "sha256 not hex": (manifest(files=[entry(sha256="z" * 64)]), "sha256"),
    "sha256 missing": (manifest(files=[entry(sha256=None)]), "'sha256' is missing"),
    "path a number": (manifest(files=[entry(path=7)]), "path must be a string"),
    "entry not an object": (manifest(files=["model.onnx"]), "each file must be an object"),
    "files an object": (manifest(files=ENTRY), "files must be a list"),
    "files missing": (manifest(files=None), "'files' is missing"),
    "name a number": (manifest(name=7), "name must be a string"),
    "version a number": (manifest(version=1), "version must be a string"),
    "format a number": (manifest(format=1), "format must be a string"),
    "other schema": (manifest(schema_version=2), "unsupported schema_version 2"),
    "schema 0": (manifest(schema_version=0), "unsupported schema_version 0"),
    "schema true": (manifest(schema_version=True), "unsupported schema_version True"),
    "schema missing": (manifest(schema_version=None), "unsupported schema_version None"),
    "not an object": (b"[]", "must be a JSON object"),
    "not JSON": (b"weights, not json", "not JSON"),
    "not UTF-8": (b'{"name": "\xff"}', "not JSON"),
}
HEADLINE = ["nested 100000 deep", "NUL byte in a path", "a file and a directory", "no files"]
THROUGH_THE_CLI = [
    *HEADLINE,
    *("not UTF-8", "not an object", "schema missing", "name a number", "files an object"),
    *("lone surrogate", "backslash", "absurd size", "sha256 not hex", "duplicate path"),
]


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "models"


def fetch(loader, dest) -> LoaderRun:
    return loader("fetch", "--name", "digits", "--version", "1", "--dest", str(dest))


@pytest.mark.parametrize("case", THROUGH_THE_CLI)
def test_a_bad_manifest_makes_fetch_exit_5_with_one_line_and_install_nothing(
    loader, container: ContainerClient, dest, case
):
    raw, says = BAD[case]
    container.upload_blob("digits/1/manifest.json", raw)
    container.upload_blob("digits/1/model.onnx", WEIGHTS)

    result = fetch(loader, dest)

    assert result.returncode == 5, result.stderr
    assert "digits/1/manifest.json" in result.error_line and says in result.error_line
    assert not dest.exists() or [p for p in dest.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("case", HEADLINE)
def test_a_bad_manifest_makes_check_exit_5_and_list_skip_it(loader, container, case):
    raw, says = BAD[case]
    container.upload_blob("digits/1/manifest.json", raw)
    container.upload_blob("digits/2/manifest.json", manifest(version="2"))

    checked = loader("check", "--name", "digits", "--version", "1")
    listed = loader("list", "--name", "digits")

    assert checked.returncode == 5, checked.stderr
    assert "digits/1/manifest.json" in checked.error_line and says in checked.error_line
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["2"]


@pytest.mark.parametrize("case", HEADLINE)
def test_a_bad_installed_manifest_makes_verify_exit_5(loader, tmp_path, case):
    raw, says = BAD[case]
    installed = tmp_path / "digits" / "1"
    installed.mkdir(parents=True)
    (installed / "manifest.json").write_bytes(raw)
    (installed / "model.onnx").write_bytes(WEIGHTS)

    result = loader("verify", str(installed))

    assert result.returncode == 5, result.stderr
    assert str(installed / "manifest.json") in result.error_line and says in result.error_line


def test_an_installed_copy_with_an_unreadable_manifest_is_fetched_again(
    loader, container, model_dir, dest
):
    published = loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    assert published.returncode == 0, published.stderr
    assert fetch(loader, dest).returncode == 0
    (dest / "digits" / "1" / "manifest.json").write_bytes(NESTED)

    again = fetch(loader, dest)

    assert again.returncode == 0, again.stderr
    verified = loader("verify", str(dest / "digits" / "1"))
    assert verified.returncode == 0 and verified.stdout.strip() == published.stdout.strip()


# Spawns the loader from a small process and reports its peak RSS: a child forked straight
# from pytest would count pytest's own pages (the high-water mark survives exec).
SPAWN_AND_MEASURE = """
import os, sys
argv = [sys.executable, "-m", "model_loader", *sys.argv[2:]]
_, status, usage = os.wait4(os.posix_spawn(sys.executable, argv, os.environ), 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(env: dict[str, str], peak_file: Path, *args: str) -> tuple[LoaderRun, int]:
    """The CLI run to its end, with its peak RSS in bytes."""
    process = subprocess.Popen(
        [sys.executable, "-c", SPAWN_AND_MEASURE, str(peak_file), *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    run = LoaderRun(process.returncode, audit("loader", stdout), audit("loader", stderr))
    return run, int(peak_file.read_text())


@pytest.mark.slow
def test_a_150_mb_manifest_is_refused_with_bounded_memory(loader_env, container, dest, tmp_path):
    huge = tmp_path / "manifest.json"
    head, tail = manifest(publisher="PADDING").split(b"PADDING")
    with huge.open("wb") as out:
        out.write(head)
        for _ in range(150):
            out.write(b"x" * 1000 * 1000)
        out.write(tail)
    with huge.open("rb") as data:
        container.upload_blob("digits/1/manifest.json", data, max_concurrency=4)
    too_big = tmp_path / "installed" / "digits" / "1"
    too_big.mkdir(parents=True)
    os.rename(huge, too_big / "manifest.json")

    fetched, fetch_peak = run_measured(
        loader_env,
        tmp_path / "fetch-peak",
        *("fetch", "--name", "digits", "--version", "1", "--dest", str(dest)),
    )
    verified, verify_peak = run_measured(
        loader_env, tmp_path / "verify-peak", "verify", str(too_big)
    )

    assert fetched.returncode == 5, fetched.stderr
    assert "digits/1/manifest.json" in fetched.error_line
    assert f"larger than {MAX_MANIFEST_BYTES // MIB} MiB" in fetched.error_line
    assert verified.returncode == 5, verified.stderr
    assert "larger than" in verified.error_line
    assert fetch_peak < 100 * MIB and verify_peak < 100 * MIB, (fetch_peak, verify_peak)
    assert not dest.exists()


@pytest.mark.slow
def test_the_costliest_manifest_under_the_limit_fits_the_charts_256mi(
    loader_env, container, dest, tmp_path
):
    """The most Python objects per byte JSON can ask for: MAX_MANIFEST_BYTES of empty objects."""
    head, tail = b'{"schema_version": 1, "files": [{}', b"]}"
    count = (MAX_MANIFEST_BYTES - len(head) - len(tail)) // 3
    container.upload_blob("digits/1/manifest.json", head + b",{}" * count + tail)

    result, peak = run_measured(
        loader_env,
        tmp_path / "peak",
        *("fetch", "--name", "digits", "--version", "1", "--dest", str(dest)),
    )

    assert result.returncode == 5, result.stderr
    assert "files[0]: 'path' is missing" in result.error_line
    assert peak < 200 * MIB, peak

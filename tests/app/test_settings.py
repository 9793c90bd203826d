"""Every setting is read once at start and validated: a bad value stops the real server
(`python -m app.server`) before any worker boots, with one line naming the variable."""

import time
from pathlib import Path

import pytest

from app.config import AppConfig, SettingError, Settings
from tests.support.gunicorn_server import run_to_exit

pytestmark = pytest.mark.slow

VALID = {
    "MODEL_ROOT": "/models",
    "MODEL_NAME": "digits",
    "MODEL_VERSION": "1",
    "MODEL_DIGEST": "",
    "APP_HOST": "127.0.0.1",
    "APP_PORT": "8080",
    "METRICS_PORT": "9090",
    "WEB_CONCURRENCY": "2",
    "GUNICORN_THREADS": "4",
    "GUNICORN_TIMEOUT": "30",
    "GUNICORN_GRACEFUL_TIMEOUT": "30",
    "GUNICORN_KEEPALIVE": "5",
    "SHUTDOWN_DRAIN_SECONDS": "10",
    "MAX_BATCH_SIZE": "64",
    "MAX_REQUEST_BYTES": "1048576",
    "ORT_INTRA_OP_THREADS": "1",
    "PROMETHEUS_MULTIPROC_DIR": "/run/prometheus",
    "CGROUP_ROOT": "/sys/fs/cgroup",
}
# Each is tried on the real server: one or more per variable, the first.
BAD = [
    ("WEB_CONCURRENCY", "0"),
    ("WEB_CONCURRENCY", ""),
    ("WEB_CONCURRENCY", "2.5"),
    ("MAX_BATCH_SIZE", "abc"),
    ("WEB_CONCURRENCY", "-1"),
    ("GUNICORN_THREADS", "0"),
    ("GUNICORN_TIMEOUT", "30s"),
    ("GUNICORN_GRACEFUL_TIMEOUT", ""),
    ("GUNICORN_KEEPALIVE", "1e3"),
    ("SHUTDOWN_DRAIN_SECONDS", "nan"),
    ("MAX_REQUEST_BYTES", "1MiB"),
    ("ORT_INTRA_OP_THREADS", "0"),
    ("APP_PORT", "70000"),
    ("APP_HOST", "local host"),
    ("METRICS_PORT", "8080"),
    ("METRICS_PORT", "0"),
    ("CGROUP_ROOT", "sys/fs/cgroup"),
    ("PROMETHEUS_MULTIPROC_DIR", ""),
    ("MODEL_ROOT", "models"),
    ("MODEL_NAME", "Digits"),
    ("MODEL_VERSION", "../1"),
    ("MODEL_DIGEST", "0" * 63),
]
# More of each kind, checked in-process (the same code path, without a process each).
MORE_BAD = [
    ("WEB_CONCURRENCY", "two"),
    ("GUNICORN_THREADS", " 4"),
    ("GUNICORN_GRACEFUL_TIMEOUT", "-5"),
    ("SHUTDOWN_DRAIN_SECONDS", "-1"),
    ("SHUTDOWN_DRAIN_SECONDS", "10s"),
    ("SHUTDOWN_DRAIN_SECONDS", "inf"),
    ("MAX_BATCH_SIZE", "0"),
    ("MAX_BATCH_SIZE", "1_000"),
    ("MAX_BATCH_SIZE", "\u0663"),  # ARABIC-INDIC DIGIT THREE: int() would take it
    ("MAX_REQUEST_BYTES", str(2**31)),
    ("ORT_INTRA_OP_THREADS", "all"),
    ("APP_PORT", "0"),
    ("APP_PORT", "http"),
    ("APP_HOST", ""),
    ("APP_HOST", "-bad-"),
    ("METRICS_PORT", "65536"),
    ("METRICS_PORT", "metrics"),
    ("CGROUP_ROOT", ""),
    ("PROMETHEUS_MULTIPROC_DIR", "run/prometheus"),
    ("MODEL_ROOT", ""),
    ("MODEL_NAME", ""),
    ("MODEL_NAME", "a..b"),
    ("MODEL_NAME", "x" * 64),
    ("MODEL_VERSION", "1..2"),
    ("MODEL_VERSION", "-1"),
    ("MODEL_DIGEST", "A" * 64),
]


def start_server(env: dict[str, str], tmp_path: Path) -> tuple[int | None, str, float]:
    """Run the real server; its exit code (None if still up after 20 s), output and seconds."""
    started = time.monotonic()
    exit_code, output = run_to_exit(env, tmp_path)
    return exit_code, output, time.monotonic() - started


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_a_bad_setting_stops_the_server_before_any_worker_with_one_line(name, value, tmp_path):
    env = {**VALID, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"), name: value}

    exit_code, output, seconds = start_server(env, tmp_path)

    assert exit_code == 2, (exit_code, output[-2000:])
    lines = output.strip().splitlines()
    assert len(lines) == 1, output[-2000:]  # no traceback, no worker
    assert lines[0].startswith(f"ai-app-server: error: {name}={value!r}: expected "), lines[0]
    assert seconds < 10


@pytest.mark.parametrize(("name", "value"), MORE_BAD, ids=[f"{n}={v[:8]!r}" for n, v in MORE_BAD])
def test_more_bad_values_are_refused_naming_the_variable_and_the_value(name, value):
    with pytest.raises(SettingError) as refused:
        Settings.from_env({**VALID, name: value}, cpus=2)

    assert str(refused.value).startswith(f"{name}={value!r}: expected ")


@pytest.mark.parametrize("name", ["MODEL_NAME", "MODEL_VERSION", "PROMETHEUS_MULTIPROC_DIR"])
def test_the_model_and_the_metrics_directory_must_be_set(name, tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"), **VALID}
    del env[name]

    exit_code, output, _ = start_server(env, tmp_path)

    assert exit_code == 2
    assert output.strip() == f"ai-app-server: error: {name} is not set", output[-2000:]


def test_a_metrics_directory_that_cannot_be_made_stops_the_master_before_any_worker(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**VALID, "PROMETHEUS_MULTIPROC_DIR": str(blocker / "prometheus")}

    exit_code, output, _ = start_server(env, tmp_path)

    assert exit_code == 2, output[-2000:]
    last = output.strip().splitlines()[-1]  # after gunicorn's "Starting gunicorn"
    assert last == (
        f"ai-app-server: error: PROMETHEUS_MULTIPROC_DIR={str(blocker / 'prometheus')!r}: "
        "Not a directory"
    )
    assert "Traceback" not in output and "Booting worker" not in output


def parse(cpus: int = 4, **env: str) -> Settings:
    """Settings for the sample model plus `env`."""
    required = {"MODEL_NAME": "digits", "MODEL_VERSION": "1", "PROMETHEUS_MULTIPROC_DIR": "/m"}
    return Settings.from_env({**required, **env}, cpus=cpus)


def test_settings_from_the_charts_environment():
    settings = Settings.from_env(VALID, cpus=4)

    assert settings.bind == "127.0.0.1:8080"
    assert (settings.workers, settings.threads, settings.timeout) == (2, 4, 30)
    assert (settings.graceful_timeout, settings.keepalive, settings.drain_seconds) == (30, 5, 10)
    assert settings.metrics_bind == ("127.0.0.1", 9090)
    assert settings.cgroup_root == Path("/sys/fs/cgroup")
    assert settings.app == AppConfig(
        model_root=Path("/models"),
        model_name="digits",
        model_version="1",
        max_batch_size=64,
        max_request_bytes=1048576,
        intra_op_threads=1,
        metrics_dir=Path("/run/prometheus"),
    )


def test_defaults_follow_the_cpus_and_values_take_their_documented_forms():
    defaults = parse(cpus=4)
    assert defaults.bind == "0.0.0.0:8080" and defaults.workers == 4
    assert defaults.app.model_root == Path("/models") and defaults.app.model_digest == ""
    assert defaults.app.intra_op_threads == 1 and defaults.app.metrics_dir == Path("/m")
    assert defaults.drain_seconds == 0
    assert defaults.metrics_bind == ("0.0.0.0", 9090)
    assert defaults.cgroup_root == Path("/sys/fs/cgroup")

    assert parse(cpus=4, WEB_CONCURRENCY="1").app.intra_op_threads == 4
    assert parse(APP_HOST="::").bind == "[::]:8080"
    assert parse(APP_HOST="ai-app.default.svc").bind == "ai-app.default.svc:8080"
    assert parse(SHUTDOWN_DRAIN_SECONDS="2.5").drain_seconds == 2.5
    assert parse(MODEL_DIGEST="").app.model_digest == ""
    assert parse(MODEL_NAME="123", MODEL_VERSION="2024.01.01+b7").app.model_dir == Path(
        "/models/123/2024.01.01+b7"
    )


def test_a_bad_value_is_a_setting_error_naming_the_variable_and_the_value():
    with pytest.raises(
        SettingError, match=r"^MAX_BATCH_SIZE='abc': expected a whole number from 1 to 2147483647$"
    ):
        parse(MAX_BATCH_SIZE="abc")
    with pytest.raises(SettingError, match=r"^MAX_BATCH_SIZE='9{80}\.\.\.': expected"):
        parse(MAX_BATCH_SIZE="9" * 5000)

"""`model_loader prefetch`, the node cache's DaemonSet: the fetch, then the node's state on
a metrics port (its readiness) until SIGTERM. Run for real against Azurite."""

import contextlib
import json
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from local.net import free_port, wait_for_port
from model_loader.install import verify_installed
from tests.support.loader_cli import LoaderRun, start_loader, stop_loaders, wait_loader

NODE = "aks-nodepool1-0"
UNREACHABLE = (  # Blob nowhere: what a fetch does here, it does without Blob
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def prefetch_args(root: Path, version: str, port: int) -> list[str]:
    return [
        "prefetch",
        *("--name", "digits", "--version", version, "--dest", str(root)),
        *("--metrics-port", str(port), "--metrics-address", "127.0.0.1"),
    ]


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample on the metrics port: name -> [(labels, value)]."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


@contextlib.contextmanager
def prefetching(
    loader_env,
    root: Path,
    version: str = "1",
    stop: signal.Signals = signal.SIGTERM,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, list]]:
    """A prefetch serving on a free loopback port once installed; yields its port and a
    list that holds its outcome (LoaderRun, seconds to exit) after the `stop` signal sent
    as the block ends."""
    port = free_port()
    env = {**loader_env, "NODE_NAME": NODE, **(extra_env or {})}
    process = start_loader(env, *prefetch_args(root, version, port))
    outcome: list[LoaderRun | float] = []
    try:
        try:
            wait_for_port(port, timeout=60)
        except TimeoutError:
            process.kill()
            raise AssertionError(wait_loader(process).stderr) from None
        yield port, outcome
        started = time.monotonic()
        process.send_signal(stop)
        outcome.append(wait_loader(process, timeout=10))
        outcome.append(time.monotonic() - started)
    finally:
        stop_loaders([process])


def ready_line(run: LoaderRun) -> dict:
    (line,) = [
        json.loads(line)
        for line in run.stderr.splitlines()
        if line.startswith("{") and json.loads(line)["event"] == "prefetch ready"
    ]
    return line


def test_prefetch_installs_then_serves_the_nodes_state_until_sigterm(
    loader, loader_env, model_dir, tmp_path
):
    digest = loader("publish", str(model_dir), "--name", "digits", "--version", "1").stdout.strip()
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    root = tmp_path / "node-cache"

    with prefetching(loader_env, root) as (port, outcome):
        _, installed = verify_installed(root / "digits" / "1", ("digits", "1"), digest)
        samples = scrape(port)
    run, seconds = outcome

    assert installed == digest
    labels = {"name": "digits", "version": "1", "digest": digest, "node": NODE, "role": "pinned"}
    assert samples["aiapp_prefetch_info"] == [(labels, 1.0)]
    assert samples["aiapp_prefetch_fetched_bytes"] == [({"version": "1"}, size)]
    assert samples["aiapp_prefetch_reused_bytes"] == [({"version": "1"}, 0.0)]
    assert 0 < samples["aiapp_prefetch_seconds"][0][1] < 60
    assert run.returncode == 0, run.stderr
    assert seconds < 5  # SIGTERM ends it at once: nothing left to do
    assert '"event": "prefetch stopped"' in run.stderr and '"signal": "SIGTERM"' in run.stderr
    ready = ready_line(run)
    assert (ready["node"], ready["version"], ready["digest"]) == (NODE, "1", digest)
    assert (ready["bytes_fetched"], ready["cache_hit"]) == (size, False)


def test_a_second_prefetch_on_the_same_root_is_a_cache_hit(loader, loader_env, model_dir, tmp_path):
    """A prefetch pod restarted on its node (or the DaemonSet rolled) downloads nothing;
    SIGINT (Ctrl-C) ends it as SIGTERM does."""
    digest = loader("publish", str(model_dir), "--name", "digits", "--version", "1").stdout.strip()
    root = tmp_path / "node-cache"
    with prefetching(loader_env, root) as (port, first):
        assert scrape(port)["aiapp_prefetch_fetched_bytes"][0][1] > 0

    with prefetching(loader_env, root, stop=signal.SIGINT) as (port, second):
        samples = scrape(port)

    assert samples["aiapp_prefetch_fetched_bytes"] == [({"version": "1"}, 0.0)]
    assert samples["aiapp_prefetch_info"][0][0]["digest"] == digest
    ready = ready_line(second[0])
    assert (ready["cache_hit"], ready["bytes_fetched"]) == (True, 0)
    assert [run.returncode for run in (first[0], second[0])] == [0, 0]


def test_a_bump_reuses_the_nodes_store_and_keeps_the_previous_version(
    loader, loader_env, model_dir, tmp_path
):
    """Version 2 has the same files: the node downloads none of them, and version 1 stays
    (model.cache.keep, default 3) for a rollback."""
    for version in ("1", "2"):
        published = loader("publish", str(model_dir), "--name", "digits", "--version", version)
        assert published.returncode == 0, published.stderr
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    root = tmp_path / "node-cache"
    with prefetching(loader_env, root, "1"):
        pass

    with prefetching(loader_env, root, "2") as (port, outcome):
        samples = scrape(port)

    assert samples["aiapp_prefetch_info"][0][0]["version"] == "2"
    assert samples["aiapp_prefetch_fetched_bytes"] == [({"version": "2"}, 0.0)]
    assert samples["aiapp_prefetch_reused_bytes"] == [({"version": "2"}, size)]
    assert outcome[0].returncode == 0
    for version in ("1", "2"):
        verify_installed(root / "digits" / version, ("digits", version))


def test_an_unpublished_version_exits_as_fetch_does_and_never_serves(loader, model_dir, tmp_path):
    loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    port = free_port()
    root = tmp_path / "node-cache"

    prefetched = loader(*prefetch_args(root, "2", port), timeout=30)
    fetched = loader("fetch", "--name", "digits", "--version", "2", "--dest", str(root))

    assert (prefetched.returncode, prefetched.error_line) == (3, fetched.error_line)
    assert fetched.returncode == 3 and "digits/2" in fetched.error_line
    assert "prefetch ready" not in prefetched.stderr  # it exited without ever listening


def test_a_missing_port_is_refused_before_any_download(loader, model_dir, tmp_path):
    loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    root = tmp_path / "node-cache"

    result = loader("prefetch", "--name", "digits", "--version", "1", "--dest", str(root))
    bad = loader(*prefetch_args(root, "1", 0))

    assert result.returncode == 2 and "PREFETCH_METRICS_PORT" in result.error_line
    assert bad.returncode == 2 and "--metrics-port" in bad.error_line
    assert not root.exists()


def test_a_port_in_use_exits_2_naming_it_and_keeps_the_install(loader, model_dir, tmp_path):
    loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    root = tmp_path / "node-cache"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = loader(*prefetch_args(root, "1", port))

    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.error_line
    verify_installed(root / "digits" / "1")  # the next start is a cache hit


def test_the_metrics_address_comes_from_the_env_where_no_option_gives_it(
    loader, model_dir, tmp_path
):
    """The chart can set PREFETCH_METRICS_ADDRESS (local pods on the host's network listen on
    loopback): an address this host doesn't have (TEST-NET-1) exits 2 naming it."""
    loader("publish", str(model_dir), "--name", "digits", "--version", "1")
    args = prefetch_args(tmp_path / "node-cache", "1", free_port())
    args = args[: args.index("--metrics-address")]

    result = loader(*args, env={"PREFETCH_METRICS_ADDRESS": "192.0.2.1"})

    assert result.returncode == 2
    assert result.error_line.startswith("model_loader: error: metrics on 192.0.2.1:")


def test_the_prefetched_version_is_kept_by_every_trim_while_it_serves(
    loader, loader_env, model_dir, tmp_path
):
    """The prefetcher holds its version as the app does, so a trim by another loader on the
    node (here `--keep 1` fetching version 2) keeps it until the prefetcher stops."""
    root = tmp_path / "models"
    for version in ("1", "2"):
        (model_dir / "config.json").write_text(json.dumps({"version": version}))
        published = loader("publish", str(model_dir), "--name", "digits", "--version", version)
        assert published.returncode == 0, published.stderr
    fetch_2 = ("fetch", "--name", "digits", "--version", "2", "--dest", str(root), "--keep", "1")

    with prefetching(loader_env, root):
        while_held = loader(*fetch_2)
        assert while_held.returncode == 0, while_held.stderr
        assert sorted(p.name for p in (root / "digits").iterdir()) == ["1", "2"]
        assert '"kept: in use"' in while_held.stderr

    after = loader(*fetch_2)
    assert after.returncode == 0, after.stderr
    assert sorted(p.name for p in (root / "digits").iterdir()) == ["2"]


def test_a_staged_version_is_on_the_node_before_the_bump_which_downloads_nothing(
    loader, loader_env, model_dir, tmp_path
):
    """model.prefetch.stage: the prefetcher keeps version 2 beside the pinned 1 (and holds
    both), so the init container of the bump to 2 is a cache hit with no Blob traffic."""
    digests = {}
    for version in ("1", "2"):
        (model_dir / "config.json").write_text(json.dumps({"version": version}))
        published = loader("publish", str(model_dir), "--name", "digits", "--version", version)
        assert published.returncode == 0, published.stderr
        digests[version] = published.stdout.strip()
    root = tmp_path / "node-cache"
    stage = {"PREFETCH_STAGE": f"2@{digests['2']}"}

    with prefetching(loader_env, root, "1", extra_env=stage) as (port, outcome):
        samples = scrape(port)
        bump = loader(
            *("fetch", "--name", "digits", "--version", "2", "--dest", str(root)),
            *("--digest", digests["2"], "--keep", "1"),
            env={"AZURE_STORAGE_CONNECTION_STRING": UNREACHABLE},
        )

    roles = {labels["version"]: labels["role"] for labels, _ in samples["aiapp_prefetch_info"]}
    assert roles == {"1": "pinned", "2": "staged"}
    assert bump.returncode == 0, bump.stderr
    assert '"event": "cache hit"' in bump.stderr
    assert '"kept: in use"' in bump.stderr  # version 1, held by the prefetcher
    assert outcome[0].returncode == 0


def test_a_bad_staged_version_exits_2_before_any_download(loader, model_dir, tmp_path):
    root = tmp_path / "node-cache"
    for stage in (["--stage", "2@nothex"], ["--stage", "../2"]):
        result = loader(*prefetch_args(root, "1", free_port()), *stage)
        assert result.returncode == 2
        assert "invalid" in result.error_line
    assert not root.exists()

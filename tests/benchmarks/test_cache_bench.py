"""Content-store benchmarks (issue 15, "Performance"): a real Azurite, the loader's CLI run for
real, Blob bytes counted by our proxy in front of Azurite. Byte targets are asserted (they are
deterministic), and so is the warm start's 1 s, which holds with a wide margin; a time target
not reached is printed as a FINDING beside the least time this machine allows for that work
(its ceiling), and fails nothing.

- Scale-out: 8 loaders started at once on one model root (a node cache), a 256 MiB model
  (224 MiB + 32 MiB + a config): Blob bytes <= 1.05x the model, and the time until all 8 have
  exited <= 1.3x one loader alone; 8 loaders on 8 roots (an emptyDir per pod) beside them.
  Bytes from one pass through the proxy, times from ROUNDS interleaved rounds straight to
  Azurite (the proxy is Python: it would take CPU from the loaders).
- Warm start: a cached 1 GiB version fetched again, the whole CLI process timed, with the stat
  rule (<= 1 s) and with full verification (page cache warm, and with the model's pages
  evicted); beside them the same fetch() called in-process, the loader's own time.
- Incremental: that 1 GiB version bumped, one 10 MiB file changed: the new version's GETs
  carry <= 11 MiB.

Before each timed run of a fetch that writes, the benchmark waits SETTLE_SECONDS, as
test_fetch_bench.py does (this VM hands freed pages back to its host; writing into pages that
must come back costs kernel time), so every contestant writes into cold pages.
"""

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from azure.storage.blob import ContainerClient

from local.azurite import Azurite
from model_loader.config import CacheSettings, TransferSettings
from model_loader.install import fetch
from tests.support.fault_proxy import FaultProxy
from tests.support.loader_cli import run_loader

pytestmark = pytest.mark.bench

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB, GIB = 2**20, 2**30
ROUNDS = int(os.environ.get("CACHE_BENCH_ROUNDS", 3))
WARM_ROUNDS = int(os.environ.get("CACHE_BENCH_WARM_ROUNDS", 5))
SETTLE_SECONDS = float(os.environ.get("CACHE_BENCH_SETTLE_SECONDS", 6))
LOADERS = 8
CONFIG = b'{"labels": 1000}\n'
SCALE_FILES = {"model.onnx": 224 * MIB, "head.bin": 32 * MIB}
BIG_FILES = {"model.onnx": GIB - 10 * MIB, "head.bin": 10 * MIB}  # head.bin changes in big/2
CONTAINER = "models"


def write_random(path: Path, size: int) -> str:
    """`size` random bytes at path; their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for start in range(0, size, 64 * MIB):
            block = os.urandom(min(64 * MIB, size - start))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def publish(env: dict[str, str], source: Path, name: str, version: str) -> str:
    result = run_loader(
        env, "publish", str(source), "--name", name, "--version", version, timeout=900
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def fetch_command(name: str, version: str, root: Path, *extra: str) -> list[str]:
    args = ["fetch", "--name", name, "--version", version, "--dest", str(root), *extra]
    return [sys.executable, "-m", "model_loader", *args]


def cpu_seconds(pid: int) -> float:
    """User + sys seconds a live process and its children have used so far."""
    process = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in (process, *process.children(recursive=True)))


def run_together(commands: list[list[str]], env: dict[str, str], logs: Path) -> tuple[float, float]:
    """Start every command at once; wall seconds until the last has exited, and their CPU
    seconds (user + sys, from wait4). Fails on any non-zero exit, with its stderr."""
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    processes = []
    for number, command in enumerate(commands):
        with (logs / f"{number}.err").open("wb") as err:
            processes.append(
                subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=err, stderr=err)
            )
    cpu, failed = 0.0, []
    for number, process in enumerate(processes):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if process.returncode:
            failed.append((logs / f"{number}.err").read_text()[-2000:])
    seconds = time.perf_counter() - started
    assert not failed, failed[0]
    return seconds, cpu


def sha256_cpu_per_gib() -> float:
    """CPU seconds sha256 takes per GiB here (256 MiB hashed in 8 MiB blocks)."""
    block = os.urandom(8 * MIB)
    digest = hashlib.sha256()
    started = time.process_time()
    for _ in range(32):
        digest.update(block)
    return (time.process_time() - started) * 4


def evict(directory: Path) -> None:
    """Drop the page cache of the files under directory (theirs only: POSIX_FADV_DONTNEED)."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def verdict(met: bool, ceiling: str) -> str:
    return "met" if met else f"FINDING: not reached, ceiling measured here {ceiling}"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[dict]:
    """Our own Azurite with scale/1 (256 MiB), big/1 and big/2 (1 GiB each, head.bin
    differs) published; a counting proxy in front of it; both loader environments."""
    workdir = tmp_path_factory.mktemp("cache-bench")
    server = Azurite(workdir=workdir / "azurite")
    server.start()
    env = server.loader_env(MODEL_LOADER_LOG_LEVEL="INFO", MODEL_CONTAINER=CONTAINER)
    proxy = FaultProxy(server.port, None)
    try:
        source = workdir / "source"
        source.mkdir()
        (source / "config.json").write_bytes(CONFIG)
        for name, size in SCALE_FILES.items():
            write_random(source / name, size)
        publish(env, source, "scale", "1")
        for name in SCALE_FILES:
            (source / name).unlink()
        for name, size in BIG_FILES.items():
            write_random(source / name, size)
        digests = {"1": publish(env, source, "big", "1")}
        head_2 = write_random(source / "head.bin", BIG_FILES["head.bin"])
        digests["2"] = publish(env, source, "big", "2")
        shutil.rmtree(source)
        with proxy:
            through = Azurite(port=proxy.port).connection_string()
            yield {
                "server": server,
                "env": env,
                "counted_env": {**env, "AZURE_STORAGE_CONNECTION_STRING": through},
                "proxy": proxy,
                "workdir": workdir,
                "digests": digests,
                "head_2": head_2,
            }
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def sent(proxy: FaultProxy, name: str, version: str) -> int:
    """Body bytes of every GET under name/version (manifest included) that crossed the proxy."""
    return sum(proxy.bytes_under(f"/{CONTAINER}/{name}/{version}/").values())


def test_scale_out_eight_loaders_on_one_root_against_eight_roots(bench):
    env, counted, proxy = bench["env"], bench["counted_env"], bench["proxy"]
    model = sum(SCALE_FILES.values()) + len(CONFIG)
    base = bench["workdir"] / "scale"

    def loaders(shared: bool, count: int) -> list[list[str]]:
        roots = [base / ("node" if shared else f"pod-{n}") for n in range(count)]
        return [fetch_command("scale", "1", root) for root in roots]

    alone, shared, separate = "1 loader alone", f"{LOADERS} loaders, one root", "emptyDir"
    starts = f"{LOADERS} CLI starts, nothing fetched"
    contestants = {
        alone: loaders(shared=True, count=1),
        shared: loaders(shared=True, count=LOADERS),
        separate: loaders(shared=False, count=LOADERS),
        starts: [[sys.executable, "-c", "import model_loader.cli"]] * LOADERS,
    }
    counted_bytes = {starts: 0}
    for name in (alone, shared, separate):
        shutil.rmtree(base, ignore_errors=True)
        before = sent(proxy, "scale", "1")
        run_together(contestants[name], counted, base / "logs")
        counted_bytes[name] = sent(proxy, "scale", "1") - before

    times = {name: [] for name in contestants}
    cpus = {name: [] for name in contestants}
    store_cpus = {name: [] for name in contestants}
    server_pid = bench["server"].process.pid
    for _ in range(ROUNDS):
        for name, group in contestants.items():
            shutil.rmtree(base, ignore_errors=True)
            time.sleep(SETTLE_SECONDS)
            store_before = cpu_seconds(server_pid)
            seconds, cpu = run_together(group, env, base / "logs")
            store_cpus[name].append(cpu_seconds(server_pid) - store_before)
            times[name].append(seconds)
            cpus[name].append(cpu)
    shutil.rmtree(base, ignore_errors=True)

    hashing = sha256_cpu_per_gib()
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    store = {name: statistics.median(values) for name, values in store_cpus.items()}
    cores = len(os.sched_getaffinity(0))
    print(
        f"\nscale-out: {model / MIB:.0f} MiB model ({' + '.join(SCALE_FILES)} + config.json), "
        f"{LOADERS} loaders started at once; Blob bytes from one pass through the counting "
        f"proxy, times median of {ROUNDS} rounds straight to Azurite, {cores} cores"
    )
    print(
        f"{'contestant':<34}{'Blob MiB':>10}{'x model':>9}{'seconds':>9}{'x alone':>9}"
        f"{'loaders CPU-s':>15}{'Azurite CPU-s':>15}"
    )
    for name in contestants:
        label = f"{LOADERS} loaders, {LOADERS} roots (emptyDir)" if name == separate else name
        print(
            f"{label:<34}{counted_bytes[name] / MIB:>10.1f}{counted_bytes[name] / model:>9.2f}"
            f"{median[name]:>9.2f}{median[name] / median[alone]:>9.2f}{cpu[name]:>15.2f}"
            f"{store[name]:>15.2f}"
        )
    # The least time 8 loaders on one root can take here: no less than one alone, nor than
    # 8 interpreters starting at once, nor than the CPU of one download plus 7 more starts
    # and 7 verifications (sha256) of every file, shared over the cores.
    extra = (LOADERS - 1) * (cpu[starts] / LOADERS + model / GIB * hashing)
    by_cpu = (cpu[alone] + store[alone] + extra) / cores
    ceiling = max(median[alone], median[starts], by_cpu)
    # Waiters verify a stored file under its blob's exclusive lock: one after another.
    serial = (LOADERS - 1) * max(SCALE_FILES.values()) / GIB * hashing
    print(
        f"ceiling: {ceiling:.2f} s = {ceiling / median[alone]:.2f}x alone, the most of: one "
        f"alone {median[alone]:.2f} s, {LOADERS} CLI starts at once {median[starts]:.2f} s, "
        f"CPU {cpu[alone] + store[alone] + extra:.2f} CPU-s over {cores} cores {by_cpu:.2f} s "
        f"(a start {cpu[starts] / LOADERS:.2f} CPU-s, sha256 {hashing:.2f} CPU-s/GiB); "
        f"{LOADERS - 1} verifications of model.onnx in turn under its blob lock: {serial:.2f} s"
    )
    ratio = counted_bytes[shared] / model
    print(f"target Blob bytes <= 1.05x the model: {ratio:.3f}x, " + verdict(ratio <= 1.05, "-"))
    time_ratio = median[shared] / median[alone]
    print(
        f"target time <= 1.3x one loader alone: {time_ratio:.2f}x, "
        + verdict(time_ratio <= 1.3, f"{ceiling / median[alone]:.2f}x")
    )
    print(
        f"emptyDir: {counted_bytes[separate] / model:.2f}x the bytes, "
        f"{median[separate] / median[alone]:.2f}x the time of one loader alone, "
        f"{median[separate] / median[shared]:.2f}x the time of {LOADERS} on one root"
    )
    assert counted_bytes[alone] >= model
    assert ratio <= 1.05
    assert counted_bytes[separate] >= LOADERS * model


@pytest.fixture(scope="module")
def installed(bench) -> Iterator[Path]:
    """A model root with big/1 installed by a real fetch through the counting proxy."""
    root = bench["workdir"] / "node"
    time.sleep(SETTLE_SECONDS)
    started = time.perf_counter()
    result = run_loader(
        bench["counted_env"],
        "fetch",
        "--name",
        "big",
        "--version",
        "1",
        "--dest",
        str(root),
        timeout=900,
    )
    cold = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    fetched = sent(bench["proxy"], "big", "1") / MIB
    print(f"\ncold fetch of big/1 through the counting proxy: {fetched:.1f} MiB in {cold:.2f} s")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_warm_start_of_a_cached_gib_with_the_stat_rule_and_with_full_verification(bench, installed):
    env, digest = bench["env"], bench["digests"]["1"]
    pinned = ("--digest", digest)
    command = {
        "stat": fetch_command("big", "1", installed, *pinned, "--verify", "stat"),
        "full": fetch_command("big", "1", installed, *pinned, "--verify", "full"),
    }
    client = ContainerClient.from_connection_string(
        env["AZURE_STORAGE_CONNECTION_STRING"], CONTAINER
    )
    rows = {
        "stat rule, CLI process": [],
        "full sha256, CLI process": [],
        "full sha256, pages evicted, CLI process": [],
        "stat rule, fetch() in-process": [],
        "full sha256, fetch() in-process": [],
        "CLI start alone (import model_loader.cli)": [],
    }
    logs = bench["workdir"] / "warm-logs"
    for _ in range(WARM_ROUNDS):
        for rule, name in (("stat", "stat rule"), ("full", "full sha256")):
            seconds, _ = run_together([command[rule]], env, logs)
            rows[f"{name}, CLI process"].append(seconds)
            hit = (logs / "0.err").read_text()
            assert '"event": "cache hit"' in hit and f'"trusted": "{rule}"' in hit, hit
        evict(installed)
        rows["full sha256, pages evicted, CLI process"].append(
            run_together([command["full"]], env, logs)[0]
        )
        for rule, name in (("stat", "stat rule"), ("full", "full sha256")):
            settings = CacheSettings(verify=rule)
            started = time.perf_counter()
            report = fetch(client, "big", "1", installed, digest, TransferSettings(), settings)
            rows[f"{name}, fetch() in-process"].append(time.perf_counter() - started)
            assert report.cache_hit
        rows["CLI start alone (import model_loader.cli)"].append(
            run_together([[sys.executable, "-c", "import model_loader.cli"]], env, logs)[0]
        )
    shutil.rmtree(logs, ignore_errors=True)

    median = {name: statistics.median(values) for name, values in rows.items()}
    hashing = sha256_cpu_per_gib()
    print(f"\nwarm start of big/1 (1 GiB cached, 3 files), median of {WARM_ROUNDS} rounds")
    print(f"{'how':<44}{'seconds':>9}")
    for name, seconds in median.items():
        print(f"{name:<44}{seconds:>9.3f}")
    stat = median["stat rule, CLI process"]
    start = median["CLI start alone (import model_loader.cli)"]
    print(
        f"the figure is the whole CLI process (what an init container takes); sha256 of 1 GiB "
        f"here: {hashing:.2f} CPU-s, so full verification takes at least {start + hashing:.2f} s"
    )
    print(
        f"target a cache hit in <= 1 s with the stat rule: {stat:.3f} s, "
        + verdict(stat <= 1.0, f"{start:.3f} s (the CLI start alone)")
    )
    full = median["full sha256, CLI process"]
    print(f"full verification: {full:.3f} s = {full / stat:.1f}x the stat rule")
    assert stat <= 1.0  # the target; about half of it here, nearly all CLI start


def test_a_gib_version_bumped_with_one_changed_10_mib_file_fetches_that_file(bench, installed):
    counted, proxy = bench["counted_env"], bench["proxy"]
    stored = installed / ".blobs" / "sha256" / bench["head_2"]
    times, counts, reports = [], [], []
    for _ in range(ROUNDS):
        shutil.rmtree(installed / "big" / "2", ignore_errors=True)
        stored.unlink(missing_ok=True)
        time.sleep(SETTLE_SECONDS)
        before = sent(proxy, "big", "2")
        started = time.perf_counter()
        result = run_loader(
            counted, "fetch", "--name", "big", "--version", "2", "--dest", str(installed)
        )
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
        counts.append(sent(proxy, "big", "2") - before)
        reports.append(json.loads((installed / "big" / "2" / "fetch-report.json").read_text()))

    fetched = max(counts)
    print(
        f"\nincremental: big/1 (1 GiB) installed, big/2 changes head.bin "
        f"({BIG_FILES['head.bin'] / MIB:.0f} MiB)"
    )
    print(
        f"Blob bytes of big/2's GETs (manifest included): {fetched / MIB:.3f} MiB "
        f"(rounds: {', '.join(str(c) for c in counts)}); report: bytes_fetched "
        f"{reports[-1]['bytes_fetched']}, bytes_reused {reports[-1]['bytes_reused']}"
    )
    print(
        f"time (CLI process, median of {ROUNDS}): {statistics.median(times):.2f} s; "
        f"the loader's own seconds: {statistics.median(r['seconds'] for r in reports):.2f} s"
    )
    print(f"target <= 11 MiB: {fetched / MIB:.3f} MiB, " + verdict(fetched <= 11 * MIB, "-"))
    assert fetched <= 11 * MIB
    assert min(counts) >= BIG_FILES["head.bin"]
    assert reports[-1]["bytes_fetched"] == BIG_FILES["head.bin"]

"""`make mutation`: cosmic-ray over the modules where a silent mistake costs most, each
against only the tests that cover it (pyproject.toml, [tool.mutation]).

cosmic-ray writes each mutant into the module's file on disk and runs a shell command, so
every process a test starts (the loader's CLI, gunicorn) runs the mutant, as it would run
the real code. That is why the tree is never mutated in place: each job works in a scratch
copy of it (.venv, .tools and node_modules linked), so tests elsewhere can run meanwhile.

Per module: `cosmic-ray init`, the operator and `# pragma: no mutate` filters; its mutants
are dealt into `parts` sessions (a slow module's run spread over several jobs). Per part:
the module's tests once unmutated (they must pass; their time sets the mutant timeout), then
`cosmic-ray exec`. The score is killed / (killed + survived); a timeout counts as killed.
Prints each module's score and every survivor's diff, writes the same to --report, and exits
1 when a module is under its threshold or its tests fail unmutated.

    python -m tests.support.mutation --tools .tools/mutation/bin [--module PATH ...]
"""

import argparse
import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LINKED = (".venv", ".tools", "node_modules")
NOT_COPIED = shutil.ignore_patterns(
    ".git", *LINKED, "build", "reports", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis"
)
OTHER_PART = "in another part"
# Run with cosmic-ray's python: marks as skipped the mutants of a session not in its part.
DEAL = """
import sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult
session, part, parts, note = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with use_db(session, WorkDB.Mode.open) as db:
    pending = sorted(db.pending_work_items, key=lambda item: item.job_id)
    for index, item in enumerate(pending):
        if index % parts != part:
            skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=note)
            db.set_result(item.job_id, skipped)
"""


@dataclass(frozen=True)
class Target:
    path: str
    tests: tuple[str, ...]
    threshold: float
    parts: int = 1


@dataclass
class Outcome:
    """One part's run, or (merged) a module's."""

    target: Target
    baseline_seconds: float = 0.0
    seconds: float = 0.0
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    filtered: int = 0
    incompetent: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def score(self) -> float:
        tested = self.killed + len(self.survivors)
        return 100.0 * self.killed / tested if tested else 100.0

    @property
    def passed(self) -> bool:
        return self.error is None and not self.incompetent and self.score >= self.target.threshold


def load_settings(pyproject: Path) -> tuple[dict, list[Target]]:
    settings = tomllib.loads(pyproject.read_text())["tool"]["mutation"]
    targets = [
        Target(
            module["path"],
            tuple(module["tests"]),
            float(module.get("threshold", settings["threshold"])),
            int(module.get("parts", 1)),
        )
        for module in settings["modules"]
    ]
    return settings, targets


def make_copy(work: Path, index: int) -> Path:
    """The tree as it is now (uncommitted changes included), without caches or outputs."""
    copy = work / f"tree-{index}"
    shutil.copytree(REPO_ROOT, copy, ignore=NOT_COPIED, symlinks=True)
    for name in LINKED:
        if (REPO_ROOT / name).exists():
            (copy / name).symlink_to(REPO_ROOT / name)
    return copy


def test_command(target: Target, settings: dict, basetemp: Path) -> list[str]:
    """pytest on the module's tests, stopping at the first failure; a test that hangs fails
    by itself (pytest-timeout), so its fixtures still stop their servers. Plugins load only
    when named (PYTEST_DISABLE_PLUGIN_AUTOLOAD): hypothesis' and schemathesis' would add 2 s
    to every mutant's run."""
    return [
        ".venv/bin/python",
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_timeout",
        f"--timeout={settings['test-timeout']}",
        f"--basetemp={basetemp}",
        *target.tests,
    ]


def write_config(path: Path, target: Target, settings: dict, command: list[str], timeout: float):
    path.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(target.path)}\n"
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(shlex.join(command))}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(settings['exclude-operators'])}\n"
    )


def run(step: list, cwd: Path, log: Path, env: dict | None = None) -> None:
    with log.open("a") as out:
        done = subprocess.run(
            list(map(str, step)), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(step[0]).name} {step[1]} failed: see {log}")


def prepare(target: Target, copy: Path, work: Path, tools: Path, settings: dict) -> list[Path]:
    """The module's session, filtered, dealt into one session per part: their paths."""
    module = work / Path(target.path).with_suffix("").as_posix().replace("/", ".")
    module.mkdir()
    config, session, log = module / "init.toml", module / "all.sqlite", module / "init.log"
    write_config(config, target, settings, ["true"], 0)
    run([tools / "cosmic-ray", "init", config, session], copy, log)
    run([tools / "cr-filter-operators", session, config], copy, log)
    run([tools / "cr-filter-pragma", session], copy, log)
    parts = []
    for part in range(target.parts):
        dealt = module / f"part-{part}.sqlite"
        shutil.copy(session, dealt)
        if target.parts > 1:
            step = [tools / "python", "-c", DEAL, dealt, part, target.parts, OTHER_PART]
            run(step, copy, log)
        parts.append(dealt)
    return parts


def run_part(target: Target, session: Path, copy: Path, tools: Path, settings: dict) -> Outcome:
    outcome = Outcome(target)
    job = session.with_suffix("")
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "TMPDIR": str(job / "tmp"),
    }
    (job / "tmp").mkdir(parents=True)
    command = test_command(target, settings, job / "pytest")
    started = time.monotonic()
    baseline = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    outcome.baseline_seconds = time.monotonic() - started
    if baseline.returncode != 0:
        outcome.error = "its tests fail unmutated:\n" + baseline.stdout[-3000:]
        return outcome
    timeout = settings["timeout-factor"] * outcome.baseline_seconds + settings["test-timeout"]
    config = job / "cosmic-ray.toml"
    write_config(config, target, settings, command, timeout)
    try:
        run([tools / "cosmic-ray", "exec", config, session], copy, job / "exec.log", env)
    except RuntimeError as error:
        outcome.error = str(error)
        return outcome
    dump = subprocess.run(
        [tools / "cosmic-ray", "dump", session], capture_output=True, text=True, check=True
    )
    for line in dump.stdout.splitlines():
        item, result = json.loads(line)
        mutation = item["mutations"][0]
        where = f"line {mutation['start_pos'][0]} {mutation['operator_name']}"
        if result is None:
            outcome.incompetent.append(f"{where}: not run")
        elif result["worker_outcome"] == "skipped":
            outcome.filtered += result["output"] != OTHER_PART
        elif result["test_outcome"] == "killed":
            outcome.killed += 1
        elif result["test_outcome"] == "survived":
            outcome.survivors.append(f"{where}\n{result['diff']}")
        else:
            outcome.incompetent.append(f"{where}: {result['worker_outcome']}")
    outcome.seconds = time.monotonic() - started
    return outcome


def stop_leftovers(tmp: Path) -> None:
    """Servers a killed mutant run left behind (Azurite keeps its data under TMPDIR)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(tmp) in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def merge(target: Target, parts: list[Outcome]) -> Outcome:
    merged = Outcome(target)
    for part in parts:
        merged.baseline_seconds = max(merged.baseline_seconds, part.baseline_seconds)
        merged.seconds += part.seconds
        merged.killed += part.killed
        merged.survivors += part.survivors
        merged.incompetent += part.incompetent
        merged.error = merged.error or part.error
    merged.filtered = parts[0].filtered  # each part's session holds every filtered mutant
    return merged


def run_all(targets: list[Target], tools: Path, settings: dict, jobs: int) -> list[Outcome]:
    """Every part of every module over `jobs` workers, one tree copy each; modules with the
    most tests first (the slowest, as a rule)."""
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        work = Path(scratch)
        copies = [make_copy(work, index) for index in range(jobs)]
        pending: queue.Queue[tuple[Target, Path]] = queue.Queue()
        for target in sorted(targets, key=lambda t: -len(t.tests) * t.parts):
            for session in prepare(target, copies[0], work, tools, settings):
                pending.put((target, session))
        results: dict[str, list[Outcome]] = {target.path: [] for target in targets}

        def worker(copy: Path) -> None:
            while True:
                try:
                    target, session = pending.get_nowait()
                except queue.Empty:
                    return
                print(f"mutating {target.path} ({session.stem})", flush=True)
                try:
                    outcome = run_part(target, session, copy, tools, settings)
                finally:
                    stop_leftovers(session.with_suffix("") / "tmp")
                print(summary_line(outcome), flush=True)
                results[target.path].append(outcome)

        threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in copies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return [merge(target, results[target.path]) for target in targets]


def summary_line(outcome: Outcome) -> str:
    tested = outcome.killed + len(outcome.survivors)
    status = "ok" if outcome.passed else "FAIL"
    return (
        f"{outcome.target.path:24} {outcome.score:5.1f}% killed ({outcome.killed}/{tested}, "
        f"{outcome.filtered} filtered) threshold {outcome.target.threshold:.0f}% "
        f"{outcome.seconds / 60:5.1f} job-min (tests unmutated {outcome.baseline_seconds:.0f} s) "
        f"{status}"
    )


def report(outcomes: list[Outcome], seconds: float, jobs: int) -> str:
    lines = [f"mutation testing (cosmic-ray), {jobs} jobs, {seconds / 60:.1f} min", ""]
    lines += [summary_line(outcome) for outcome in outcomes]
    for outcome in outcomes:
        if outcome.error:
            lines += ["", f"== {outcome.target.path}: {outcome.error}"]
        for problem in outcome.incompetent:
            lines += ["", f"== {outcome.target.path}: mutant not judged: {problem}"]
        for survivor in outcome.survivors:
            lines += ["", f"== {outcome.target.path}: survived, {survivor}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=Path, required=True, help="cosmic-ray's bin directory")
    parser.add_argument("--report", type=Path, help="write the report here too")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")))
    parser.add_argument("--module", action="append", help="only these module paths")
    args = parser.parse_args()
    settings, targets = load_settings(REPO_ROOT / "pyproject.toml")
    if args.module:
        targets = [t for t in targets if t.path in args.module]
        if not targets:
            parser.error(f"no module in [tool.mutation] matches {args.module}")
    started = time.monotonic()
    outcomes = run_all(targets, args.tools.resolve(), settings, args.jobs)
    text = report(outcomes, time.monotonic() - started, args.jobs)
    print("\n" + text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

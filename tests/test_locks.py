"""requirements/*.txt, the locks every install uses (make setup, both Dockerfiles, checkov):
each pins every package with its hashes, agrees with the group it was resolved from, and the
images get the very versions the tests run on. Offline: it reads what `make lock` wrote and the
installed packages' metadata; it doesn't resolve."""

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "requirements"
PROJECT = "ai-app (pyproject.toml)"
HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def read_lock(text: str) -> tuple[list[Pin], list[str]]:
    """The pins of a lock in uv's requirements.txt format, and what is wrong with its lines."""
    entries: list[dict] = []
    problems = []
    for line in text.splitlines():
        item = line.strip().removesuffix("\\").strip()
        if not item or line.startswith("#"):
            continue
        if not line[0].isspace():
            entries.append({"line": item, "hashes": [], "via": []})
        elif entries and item.startswith("--hash="):
            entries[-1]["hashes"].append(item.removeprefix("--hash="))
        elif entries and item.startswith("#"):
            source = item.removeprefix("# via").removeprefix("#").strip()
            entries[-1]["via"] += [source] if source else []
        else:
            problems.append(f"unexpected line {line!r}")
    pins = []
    for entry in entries:
        requirement = Requirement(entry["line"])
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in str(specifiers[0]):
            problems.append(f"{entry['line']!r} is not pinned with ==")
            continue
        if not entry["hashes"] or not all(HASH.fullmatch(h) for h in entry["hashes"]):
            problems.append(f"{entry['line']!r} has no --hash=sha256 (or a malformed one)")
        if not entry["via"]:
            problems.append(f"{entry['line']!r} has no '# via' (who asks for it)")
        name = canonicalize_name(requirement.name)
        marker = str(requirement.marker or "")
        version = Version(specifiers[0].version)
        pins.append(Pin(name, version, marker, tuple(entry["hashes"]), tuple(entry["via"])))
    return pins, problems


def group_problems(requirements: list[Requirement], source: str, pins: list[Pin]) -> list[str]:
    """Each requirement pinned at a version it allows; nothing pinned for a requirement the
    group no longer has; one version per package (the same on every Python); no orphan."""
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    problems = [f"{name} is pinned {len(p)} times" for name, p in by_name.items() if len(p) > 1]
    wanted = {canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        for pin in by_name.get(canonicalize_name(requirement.name)) or [None]:
            if pin is None:
                problems.append(f"{requirement} is not pinned")
            elif not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{requirement} but the lock pins {pin.name}=={pin.version}")
    for pin in pins:
        asked_by = {v for v in pin.via if v == source or canonicalize_name(v) in by_name}
        if source in pin.via and pin.name not in wanted:
            problems.append(f"{pin.name} is pinned for {source}, which no longer asks for it")
        elif not asked_by - {pin.name}:
            problems.append(f"{pin.name} is pinned but nothing in the lock asks for it")
    return problems


def closure_problems(requirements: list[Requirement], pins: list[Pin]) -> list[str]:
    """Every dependency (extras included) that this Python needs, per the installed metadata
    of the pinned versions, is pinned too; what the walk reaches must be installed as pinned."""
    pinned = {pin.name: pin for pin in pins}
    problems, seen = [], set()
    wanted = [r for r in requirements if r.marker is None or r.marker.evaluate()]
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in wanted]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name not in pinned:
            continue
        seen.add((name, extras))
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed here (make venv)")
            continue
        if Version(distribution.version) != pinned[name].version:
            problems.append(
                f"{name} {distribution.version} is installed, not the lock's (make venv)"
            )
            continue
        for requirement in map(Requirement, distribution.requires or []):
            environments = [{"extra": extra} for extra in extras or {""}]
            if requirement.marker and not any(map(requirement.marker.evaluate, environments)):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in pinned:
                problems.append(f"{name} needs {requirement}, which is not pinned")
            else:
                todo.append((dependency, frozenset(requirement.extras)))
    return problems


def groups() -> dict[str, list[str]]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]


def in_file(name: str) -> list[str]:
    lines = (REQUIREMENTS / f"{name}.in").read_text().splitlines()
    return [line for line in (ln.split("#")[0].strip() for ln in lines) if line]


def sources() -> dict[str, tuple[list[str], str]]:
    """Each lock's requirements and the label uv writes for them in `# via`."""
    g = groups()
    return {
        "dev": (g["loader"] + g["app"] + g["dev"], PROJECT),
        "app": (g["app"], PROJECT),
        "loader": (g["loader"], PROJECT),
        "checkov": (in_file("checkov"), "-r requirements/checkov.in"),
        "uv": (in_file("uv"), "-r requirements/uv.in"),
        "pip": (in_file("pip"), "-r requirements/pip.in"),
    }


def lock(name: str) -> list[Pin]:
    pins, problems = read_lock((REQUIREMENTS / f"{name}.txt").read_text())
    assert problems == []
    return pins


@pytest.mark.parametrize("name", sources())
def test_every_line_of_the_lock_is_pinned_with_hashes(name):
    pins, problems = read_lock((REQUIREMENTS / f"{name}.txt").read_text())

    assert problems == []
    assert pins


@pytest.mark.parametrize("name", sources())
def test_the_lock_agrees_with_its_group(name):
    requirements, source = sources()[name]

    assert group_problems(list(map(Requirement, requirements)), source, lock(name)) == []


@pytest.mark.parametrize("name", ["dev", "app", "loader"])
def test_the_lock_pins_every_dependency_this_python_needs(name):
    requirements, _ = sources()[name]

    assert closure_problems(list(map(Requirement, requirements)), lock(name)) == []


@pytest.mark.parametrize("image", ["app", "loader"])
def test_the_images_get_the_versions_the_tests_run_on(image):
    tested = {(pin.name, pin.version, pin.marker) for pin in lock("dev")}

    shipped = {(pin.name, pin.version, pin.marker) for pin in lock(image)}
    assert shipped - tested == set()


def test_every_pip_install_uses_a_lock_with_hashes():
    installs = []
    for path in ["Makefile", "Dockerfile.app", "Dockerfile.loader"]:
        text = (REPO_ROOT / path).read_text().replace("\\\n", " ")
        installs += [(path, m) for m in re.findall(r"pip install[^\n&;]*", text)]
    locked = re.compile(r"--require-hashes .*-r requirements/\w+\.txt|--no-deps .*-e \.")

    assert [(path, i) for path, i in installs if not locked.search(i)] == []
    assert len(installs) >= 6


# The checks can fail: the real group with one drift each.
def drifted(change: str) -> list[str]:
    requirements, _ = sources()["app"]
    pins = lock("app")
    if change == "added":
        requirements = [*requirements, "opencv-python-headless>=4"]
    elif change == "raised":
        requirements = [r.replace("onnxruntime>=1.17", "onnxruntime>=99") for r in requirements]
    elif change == "removed":
        requirements = [r for r in requirements if not r.startswith("prometheus-client")]
    elif change == "two versions":
        pins = [*pins, Pin("numpy", Version("1.26.4"), "python_version >= '3.12'", (), (PROJECT,))]
    return group_problems(list(map(Requirement, requirements)), PROJECT, pins)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("added", "opencv-python-headless>=4 is not pinned"),
        ("raised", "onnxruntime>=99 but the lock pins onnxruntime=="),
        ("removed", "prometheus-client is pinned for ai-app (pyproject.toml), which no longer"),
        ("two versions", "numpy is pinned 2 times"),
    ],
)
def test_a_group_that_drifted_from_its_lock_is_caught(change, problem):
    problems = drifted(change)

    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_a_lock_line_without_a_hash_or_pin_is_caught():
    text = f"flask==3.1.3\n    # via {PROJECT}\nnumpy>=2 \\\n    --hash=sha256:{'0' * 64}\n"

    assert read_lock(text)[1] == [
        "'flask==3.1.3' has no --hash=sha256 (or a malformed one)",
        "'numpy>=2' is not pinned with ==",
    ]


def test_a_dependency_missing_from_the_lock_is_caught():
    pins = [pin for pin in lock("app") if pin.name != "werkzeug"]

    assert closure_problems([Requirement("flask")], pins) == [
        f"flask needs {next(r for r in metadata.requires('flask') if 'erkzeug' in r)}, "
        "which is not pinned"
    ]

"""podman as this machine runs it: runc, no default ulimits, host network only."""

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = REPO_ROOT / ".tools" / "containers.conf"
# podman 4.3.0 brought what the end-to-end test plays: `podman kube play` (the new name of
# `play kube`) and `podman kube down`, emptyDir volumes, and secrets from podman's own store.
KUBE_PLAY_VERSION = (4, 3)


def podman_env() -> dict[str, str]:
    """The environment podman needs here (crun fails on these hybrid cgroups)."""
    if not CONTAINERS_CONF.exists():
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(
            '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'
        )
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        input=input,
    )


def podman_version(version_output: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `podman --version`, e.g. "podman version 4.9.3"."""
    match = re.search(r"\bversion (\d+)\.(\d+)(?:\.(\d+))?", version_output)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


def why_podman_is_too_old(version_output: str) -> str | None:
    """None when this podman plays the chart's pod, else the reason (for a skip)."""
    version = podman_version(version_output)
    if version is None:
        return f"cannot read podman's version from {version_output.strip()[:80]!r}"
    if version[:2] < KUBE_PLAY_VERSION:
        return (
            f"podman {'.'.join(map(str, version))} is older than 4.3, the first with "
            "`podman kube play`/`kube down`, emptyDir volumes and secrets"
        )
    return None


def why_podman_cannot_run() -> str | None:
    """None when podman can run containers here, else the reason (for a skip)."""
    if shutil.which("podman") is None:
        return "podman is not installed (make test installs it on Debian/Ubuntu as root)"
    too_old = why_podman_is_too_old(podman("--version", check=False).stdout)
    if too_old:
        return too_old
    if os.geteuid() != 0:
        return "podman runs pods with host networking only as root here"
    result = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if result.returncode != 0:
        return f"podman info failed: {result.stderr.strip()[:200]}"
    return None

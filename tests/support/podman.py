"""podman as this machine runs it: runc, no default ulimits, host network only."""

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / ".tools" / "containers.conf"


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


def why_podman_cannot_run() -> str | None:
    """None when podman can run containers here, else the reason (for a skip)."""
    if shutil.which("podman") is None:
        return "podman is not installed (make test installs it on Debian/Ubuntu as root)"
    if os.geteuid() != 0:
        return "podman runs pods with host networking only as root here"
    result = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if result.returncode != 0:
        return f"podman info failed: {result.stderr.strip()[:200]}"
    return None

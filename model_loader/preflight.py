"""`make preflight`: before a release, check the model the chart's init container will fetch.

Reads `helm template` output on stdin, takes the loader init container's settings from the
rendered pod (so values are read exactly as helm reads them: numbers, `--set` flags,
`storage.container`) and runs `check` with them. Secrets the pod takes from a Secret come
from the caller's environment. Runs from the development venv (PyYAML), not in the image.
"""

import os
import sys

import yaml

from model_loader.cli import main as loader_main

LOADER_CONTAINER = "model-loader"


def loader_settings(manifests: str) -> dict[str, str]:
    """The init container's literal env in the rendered Deployment."""
    for obj in yaml.safe_load_all(manifests):
        if obj and obj.get("kind") == "Deployment":
            for container in obj["spec"]["template"]["spec"].get("initContainers", []):
                if container["name"] == LOADER_CONTAINER:
                    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    raise SystemExit(f"preflight: no {LOADER_CONTAINER} init container in the rendered chart")


def main() -> int:
    os.environ.update(loader_settings(sys.stdin.read()))
    return loader_main(["check"])


if __name__ == "__main__":
    sys.exit(main())

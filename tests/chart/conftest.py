"""Render the chart with the real helm binaries (v4 by default, v3 for compatibility)."""

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from pyhelm3 import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "chart"
TOOLS = REPO_ROOT / ".tools"
HELM_V4 = os.environ.get("HELM_V4", str(TOOLS / "helm-v4" / "helm"))
HELM_V3 = os.environ.get("HELM_V3", str(TOOLS / "helm-v3" / "helm"))
# The default auth mode needs an account and a client ID; tests start from these.
BASE_VALUES = yaml.safe_load((CHART / "ci" / "workload-identity-values.yaml").read_text())

# Every optional feature on (the checkov scan and the schema checks use it too).
EVERY_OPTION = {
    "image": {
        "app": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
        "loader": {"digest": "sha256:" + "b" * 64, "pullPolicy": "Always"},
    },
    "autoscaling": {"enabled": True},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True, "ingressFrom": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "imagePullSecrets": [{"name": "acr-pull"}],
    # drainSeconds outlasts the Azure LB's probe, as externalTrafficPolicy Local needs.
    "app": {"extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}], "drainSeconds": 15},
    "loader": {"extraEnv": [{"name": "MODEL_FETCH_RANGE_CONCURRENCY", "value": "8"}]},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "inference", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"a": "b"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "service": {
        "annotations": {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
        "externalTrafficPolicy": "Local",
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
    },
}
AUTH_MODES = {
    "workloadIdentity": {},
    "existingSecret": {"auth": {"mode": "existingSecret", "existingSecret": {"name": "blob"}}},
    "none": {"auth": {"mode": "none"}},
}


def merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render(values: dict | None = None, helm: str = HELM_V4) -> list[dict]:
    """Every object `helm template` renders (hooks included), through pyhelm3."""
    client = Client(executable=helm)

    async def run() -> list[dict]:
        chart = await client.get_chart(CHART)
        objects = await client.template_resources(
            chart, "demo", merge(BASE_VALUES, values or {}), namespace="serving"
        )
        return [obj for obj in objects if obj]

    return asyncio.run(run())


def render_error(values: dict, helm: str = HELM_V4) -> str:
    """helm's error message for values that must not render."""
    result = subprocess.run(
        [helm, "template", "demo", str(CHART), "--values", "-"],
        input=yaml.safe_dump(merge(BASE_VALUES, values)),
        text=True,
        capture_output=True,
    )
    assert result.returncode != 0, f"rendered although it should fail: {values}"
    return result.stderr


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    (found,) = by_kind(objects, kind)
    return found


@pytest.fixture(scope="session", autouse=True)
def helm_binaries() -> None:
    for helm in (HELM_V4, HELM_V3):
        if not Path(helm).exists():
            pytest.fail(f"{helm} is missing: run `make helm`")

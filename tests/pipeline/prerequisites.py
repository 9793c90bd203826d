"""A tool or file a pipeline test needs: a skip that says why on a laptop, a failure in CI,
where `make test` has installed it and shared/ sits beside the clone. CI is `CI=true`, or
`TF_BUILD=True`, which Azure Pipelines sets (it sets no `CI`)."""

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("TF_BUILD", "").lower() == "true"


def require(present: bool, what: str) -> None:
    if present:
        return
    if in_ci():
        pytest.fail(f"{what} is missing in CI, where it must be")
    pytest.skip(f"{what} is missing here")

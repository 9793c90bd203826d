"""A tool or file a pipeline test needs: a skip that says why on a laptop, a failure in CI
(CI=true), where `make test` has installed it and shared/ sits beside the clone."""

import os

import pytest


def require(present: bool, what: str) -> None:
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI, where it must be")
    pytest.skip(f"{what} is missing here")

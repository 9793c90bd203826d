"""The app serves only the name and version it is configured for, read from the manifest
itself: a copy of another version installed under this one's path is refused, even with no
pin, and even pinned to that copy's own digest (so the digest check can't be what refuses)."""

import shutil

import pytest

from app.config import AppConfig
from tests.app.test_model_loading import not_ready_reason


@pytest.mark.parametrize("installed_as", ["digits/2", "other/1"])
@pytest.mark.parametrize("pinned", [False, True], ids=["no pin", "pinned to the copy"])
def test_a_manifest_for_another_name_or_version_is_refused(sample, tmp_path, installed_as, pinned):
    shutil.copytree(sample["directory"], tmp_path / installed_as)
    name, version = installed_as.split("/")
    digest = sample["digest"] if pinned else None

    reason = not_ready_reason(AppConfig(tmp_path, name, version, model_digest=digest))

    assert f"is for digits/1, not {installed_as}" in reason

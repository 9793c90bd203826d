"""The sample model installed on disk exactly as the loader lays it out (manifest included)."""

import json
from pathlib import Path

import numpy as np

from model_loader.manifest import FileEntry, Manifest, digest_of, sha256_of_file
from tests.support.sample_model import export_onnx, train


def install_sample_model(root: Path, name: str = "digits", version: str = "1") -> dict:
    """Train, export and install under root/name/version; returns digest, test data and
    the app's env for it."""
    model, x_test, y_test = train()
    directory = root / name / version
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(export_onnx(model))
    entry = FileEntry(
        "model.onnx",
        (directory / "model.onnx").stat().st_size,
        sha256_of_file(directory / "model.onnx"),
    )
    manifest = Manifest(name, version, "onnx", "2026-11-24T00:00:00Z", "tests", (entry,))
    raw = manifest.to_bytes()
    (directory / "manifest.json").write_bytes(raw)
    report = {
        "name": name,
        "version": version,
        "digest": digest_of(raw),
        "bytes": entry.size,
        "files": 1,
        "seconds": 0.25,
        "cache_hit": False,
        "fetched_at": "2026-11-24T00:00:00Z",
    }
    (directory / "fetch-report.json").write_text(json.dumps(report))
    return {
        "digest": digest_of(raw),
        "x_test": np.asarray(x_test, dtype=np.float32),
        "y_test": y_test,
        "sklearn_model": model,
        "directory": directory,
        "env": {  # what the chart gives the app for this model
            "MODEL_ROOT": str(root),
            "MODEL_NAME": name,
            "MODEL_VERSION": version,
            "MODEL_DIGEST": digest_of(raw),
        },
    }

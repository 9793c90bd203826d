"""The model runtime behind a small interface: ONNX today, another format tomorrow."""

import fcntl
import hashlib
import json
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

import model_spec
from model_spec import ImageInput

MANIFEST = "manifest.json"
FETCH_REPORT = "fetch-report.json"

# Open Inference Protocol datatypes <-> numpy dtypes.
OIP_DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,  # onnxruntime's string tensors: str elements
}
ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


FLOAT_TYPES = ("FP16", "FP32", "FP64")


class ModelLoadError(Exception):
    """The model directory is missing, unverified or unreadable."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # OIP datatype, e.g. FP32
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    @property
    def dtype(self) -> type:
        return OIP_DATATYPES[self.datatype]

    def as_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class Model(Protocol):
    name: str
    version: str
    digest: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    load_seconds: float
    fetch_report: dict
    image_input: ImageInput | None  # how the first input wants encoded images, if it does
    labels: tuple[str, ...] | None  # the first output's class names, in index order

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]: ...


class OnnxModel:
    """An ONNX model installed by the loader, served with onnxruntime on the CPU."""

    platform = "onnxruntime_onnx"

    def __init__(
        self, directory: Path, name: str, version: str, digest: str, intra_op_threads: int
    ) -> None:
        started = time.perf_counter()
        self._serving = hold_version(directory)
        if self._serving is not None:
            weakref.finalize(self, os.close, self._serving)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise ModelLoadError(
                f"{directory}: no {MANIFEST}; not a version installed and verified by the loader"
            )
        raw = manifest_path.read_bytes()
        self.digest = hashlib.sha256(raw).hexdigest()
        if digest and digest != self.digest:
            raise ModelLoadError(
                f"{manifest_path}: digest {self.digest} is not the pinned {digest}"
            )
        try:
            manifest = json.loads(raw)
            identity = (manifest["name"], manifest["version"])
            onnx_files = [f["path"] for f in manifest["files"] if f["path"].endswith(".onnx")]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{manifest_path}: unreadable manifest ({exc!r})") from None
        if identity != (name, version):
            raise ModelLoadError(
                f"{manifest_path}: is for {identity[0]}/{identity[1]}, not {name}/{version}"
            )
        if manifest.get("format") != "onnx" or len(onnx_files) != 1:
            raise ModelLoadError(f"{manifest_path}: expected format onnx with one .onnx file")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1  # pragma: no mutate (speed only, not behaviour)
        try:
            self._session = onnxruntime.InferenceSession(
                str(directory / onnx_files[0]), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"{directory / onnx_files[0]}: cannot load: {exc}") from exc
        self.name = name
        self.version = version
        self.inputs = tuple(_spec(arg) for arg in self._session.get_inputs())
        self.outputs = tuple(_spec(arg) for arg in self._session.get_outputs())
        self.image_input, self.labels = _read_spec(directory, self.inputs, self.outputs)
        self.fetch_report = _read_report(directory / FETCH_REPORT)
        self.load_seconds = time.perf_counter() - started

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self._session.run(outputs, inputs)


def hold_version(directory: Path) -> int | None:
    """A shared flock on the version directory, held as long as this process serves it: the
    loader's retention never removes a version so held (model_loader/retention.py). Waits
    while a removal holds it, then fails if the directory was removed meanwhile. None when
    there is no directory (the manifest check says so) or the volume has no flock (where
    retention removes nothing either)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return fd
    try:
        still_there = os.stat(directory).st_ino == os.fstat(fd).st_ino
    except OSError:
        still_there = False
    if not still_there:
        os.close(fd)
        raise ModelLoadError(f"{directory}: removed by the loader's retention as this app started")
    return fd


def _spec(arg) -> TensorSpec:
    if arg.type not in ONNX_TYPES:
        raise ModelLoadError(f"tensor {arg.name}: unsupported type {arg.type}")
    shape = tuple(dim if isinstance(dim, int) else -1 for dim in arg.shape)
    return TensorSpec(arg.name, ONNX_TYPES[arg.type], shape)


def _read_spec(
    directory: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
) -> tuple[ImageInput | None, tuple[str, ...] | None]:
    """What the version directory declares beside the model (model_spec), re-checked
    against the model's own first input and output: any mismatch keeps the app not ready."""
    try:
        image_input = model_spec.read_image_input(directory, inputs[0].shape if inputs else ())
        labels = model_spec.read_labels(directory, outputs[0].shape)
    except model_spec.SpecError as exc:
        raise ModelLoadError(f"{directory}: {exc}") from None
    scores = outputs[0]
    if labels is not None and (len(scores.shape) != 2 or scores.datatype not in FLOAT_TYPES):
        raise ModelLoadError(
            f"{directory}: labels need class scores [batch, classes] as the first output; "
            f"{scores.name!r} is {scores.datatype} {list(scores.shape)}"
        )
    if image_input is not None and len(inputs) != 1:
        raise ModelLoadError(
            f"{directory / model_spec.PREPROCESSOR_CONFIG}: images need a model with one "
            f"input; this one takes {[spec.name for spec in inputs]}"
        )
    return image_input, labels


def _read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}

"""OnnxModel reads a version directory the loader installed, and refuses each way it can be
wrong with the reason (the app then stays up, not ready, and says it). Comparisons are
tried from both sides (a pin, name or version before and after the right one), so a check
that orders instead of comparing fails here."""

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.model import ModelLoadError, OnnxModel, TensorSpec
from tests.support.installed_image_model import TINY_PREPROCESSING, install_version


def load(directory: Path, name: str = "digits", version: str = "1", digest: str = ""):
    return OnnxModel(directory, name, version, digest, intra_op_threads=1)


def copy_with_manifest(sample: dict, target: Path, **changes) -> Path:
    """The sample version copied to target, its manifest edited (no digest pin then)."""
    shutil.copytree(sample["directory"], target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, **changes}))
    return target


def test_the_installed_sample_loads_with_its_identity_report_and_load_time(sample):
    started = time.perf_counter()
    model = load(sample["directory"], digest=sample["digest"])
    elapsed = time.perf_counter() - started

    assert (model.name, model.version, model.digest) == ("digits", "1", sample["digest"])
    assert 0 < model.load_seconds <= elapsed
    assert model.fetch_report["digest"] == sample["digest"]


@pytest.mark.parametrize("pin", ["0" * 64, "f" * 64], ids=["below", "above"])
def test_a_pin_on_either_side_of_the_digest_is_refused(sample, pin):
    with pytest.raises(ModelLoadError, match=f"is not the pinned {pin}"):
        load(sample["directory"], digest=pin)


@pytest.mark.parametrize(
    ("name", "version"), [("alpha", "1"), ("zeta", "1"), ("digits", "0"), ("digits", "2")]
)
def test_a_name_or_version_on_either_side_of_the_manifests_is_refused(sample, name, version):
    with pytest.raises(ModelLoadError, match=f"is for digits/1, not {name}/{version}"):
        load(sample["directory"], name, version)


@pytest.mark.parametrize("model_format", ["aaa", "zzz", None], ids=["before", "after", "absent"])
def test_a_format_other_than_onnx_is_refused(sample, tmp_path, model_format):
    directory = copy_with_manifest(sample, tmp_path / "v", format=model_format)

    with pytest.raises(ModelLoadError, match=r"expected format onnx with one \.onnx file"):
        load(directory)


@pytest.mark.parametrize("onnx_files", [0, 2])
def test_a_version_without_exactly_one_onnx_file_is_refused(sample, tmp_path, onnx_files):
    manifest = json.loads((sample["directory"] / "manifest.json").read_text())
    entry = manifest["files"][0]
    files = [{**entry, "path": f"model{i}.onnx"} for i in range(onnx_files)]
    directory = copy_with_manifest(sample, tmp_path / "v", files=files or [{**entry, "path": "x"}])

    with pytest.raises(ModelLoadError, match=r"expected format onnx with one \.onnx file"):
        load(directory)


def test_an_onnx_file_onnxruntime_cannot_read_is_refused_naming_it(sample, tmp_path):
    directory = copy_with_manifest(sample, tmp_path / "v")
    (directory / "model.onnx").write_bytes(b"not a protobuf")

    expected = re.escape(f"{directory / 'model.onnx'}: cannot load: ")
    with pytest.raises(ModelLoadError, match=expected):
        load(directory)


@pytest.mark.parametrize("report", [None, "{not json"], ids=["missing", "not JSON"])
def test_a_missing_or_unreadable_fetch_report_is_an_empty_one(sample, tmp_path, report):
    directory = copy_with_manifest(sample, tmp_path / "v")
    if report is None:
        (directory / "fetch-report.json").unlink()
    else:
        (directory / "fetch-report.json").write_text(report)

    assert load(directory).fetch_report == {}


def test_tensor_specs_are_immutable_since_every_request_thread_shares_them(sample):
    spec = load(sample["directory"]).inputs[0]

    assert isinstance(spec, TensorSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.shape = (1,)


def image_model(*, inputs: int = 1, scores: str = "logits") -> bytes:
    """x [N,3,8,8] -> class scores [N,4] as `scores`: "logits" (FP32 [N,4]), "rank3" (FP32
    [N,1,4]) or "int" (INT64 [N,4]); with inputs=2 a second input y [N,1] passed through."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"]),
        helper.make_node("Gemm", ["means", "weights"], ["logits"]),
    ]
    kind, shape = TensorProto.FLOAT, ["N", 4]
    if scores == "rank3":
        nodes.append(helper.make_node("Unsqueeze", ["logits", "axis"], ["scores"]))
        shape = ["N", 1, 4]
    elif scores == "int":
        nodes.append(helper.make_node("Cast", ["logits"], ["scores"], to=TensorProto.INT64))
        kind = TensorProto.INT64
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["scores"]))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])]
    graph_outputs = [helper.make_tensor_value_info("scores", kind, shape)]
    if inputs == 2:
        nodes.append(helper.make_node("Identity", ["y"], ["y_out"]))
        graph_inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1]))
        graph_outputs.append(helper.make_tensor_value_info("y_out", TensorProto.FLOAT, ["N", 1]))
    initializers = [
        numpy_helper.from_array(np.ones((3, 4), np.float32), "weights"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
    ]
    graph = helper.make_graph(nodes, "declared", graph_inputs, graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def install_image_model(root: Path, model: bytes) -> Path:
    files = {
        "model.onnx": model,
        "labels.txt": b"a\nb\nc\nd\n",
        "preprocessor_config.json": json.dumps(TINY_PREPROCESSING).encode(),
    }
    return install_version(root, "digits", "1", files)["directory"]


def test_a_declared_image_model_loads_with_its_image_input_and_labels(tmp_path):
    model = load(install_image_model(tmp_path, image_model()))

    assert (model.image_input.channels, model.image_input.height) == (3, 8)
    assert model.labels == ("a", "b", "c", "d")


def test_images_declared_for_a_model_with_two_inputs_are_refused(tmp_path):
    directory = install_image_model(tmp_path, image_model(inputs=2))

    expected = f"{directory / 'preprocessor_config.json'}: images need a model with one input"
    with pytest.raises(ModelLoadError, match=re.escape(expected)):
        load(directory)


@pytest.mark.parametrize(
    ("scores", "described"), [("rank3", "FP32 [-1, 1, 4]"), ("int", "INT64 [-1, 4]")]
)
def test_labels_for_a_first_output_that_is_not_float_scores_per_row_are_refused(
    tmp_path, scores, described
):
    directory = install_image_model(tmp_path, image_model(scores=scores))

    expected = (
        f"labels need class scores [batch, classes] as the first output; 'scores' is {described}"
    )
    with pytest.raises(ModelLoadError, match=re.escape(expected)):
        load(directory)

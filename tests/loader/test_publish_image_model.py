"""publish checks what an image model declares (preprocessor_config.json, labels) against its
ONNX input and output before uploading anything: a mismatch is exit 2 and one line naming the
file and the field."""

import json
import shutil

import pytest

from tests.support.image_model import sample_image_model


@pytest.fixture
def image_model(tmp_path):
    """A copy of the sample image model (input [N,3,224,224], output [N,4]) to spoil."""
    return shutil.copytree(sample_image_model(), tmp_path / "orientation")


def edit_config(directory, **changes):
    path = directory / "preprocessor_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def publish(loader, directory):
    return loader("publish", str(directory), "--name", "orientation", "--version", "1")


def test_the_sample_image_model_is_published_with_its_declarations(loader, container):
    result = publish(loader, sample_image_model())

    assert result.returncode == 0, result.stderr
    names = {blob.name.removeprefix("orientation/1/") for blob in container.list_blobs()}
    assert names == {"model.onnx", "preprocessor_config.json", "labels.txt", "manifest.json"}


def spoil_json(d):
    (d / "preprocessor_config.json").write_text('{"do_resize": true,')


def unsupported_field(d):
    edit_config(d, do_reduce_labels=True)


def crop_too_big(d):
    edit_config(d, crop_size={"height": 256, "width": 256})


def two_means(d):
    edit_config(d, image_mean=[0.5, 0.5])


def three_labels(d):
    (d / "labels.txt").write_text("0\n90\n180\n")


def five_id2labels(d):
    (d / "labels.txt").unlink()
    (d / "config.json").write_text(json.dumps({"id2label": {str(i): f"c{i}" for i in range(5)}}))


def grey_model_input(d):
    """The same config with a model whose input is NHWC with 2 channels: no image layout."""
    import onnx

    model = onnx.load(d / "model.onnx")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims[1:], (224, 224, 2), strict=True):
        dim.dim_value = value
    onnx.save(model, d / "model.onnx")


def two_inputs(d):
    import onnx

    model = onnx.load(d / "model.onnx")
    model.graph.input.append(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1]))
    onnx.save(model, d / "model.onnx")


def not_onnx(d):
    (d / "model.onnx").write_bytes(b"\x00\xff not a protobuf")


def second_onnx(d):
    shutil.copy(d / "model.onnx", d / "extra.onnx")


@pytest.mark.parametrize(
    ("spoil", "file_and_field"),
    [
        (spoil_json, "preprocessor_config.json: json:"),
        (unsupported_field, "preprocessor_config.json: do_reduce_labels:"),
        (crop_too_big, "preprocessor_config.json: crop_size:"),
        (two_means, "preprocessor_config.json: image_mean:"),
        (three_labels, "labels.txt: labels:"),
        (five_id2labels, "config.json: id2label:"),
        (grey_model_input, "model.onnx: input shape:"),
        (two_inputs, "preprocessor_config.json: images need a model with one input"),
        (not_onnx, "model.onnx: not a readable ONNX model"),
        (second_onnx, "preprocessor_config.json needs exactly one .onnx file"),
    ],
)
def test_a_declaration_that_does_not_fit_the_model_exits_2_and_uploads_nothing(
    loader, container, image_model, spoil, file_and_field
):
    spoil(image_model)

    result = publish(loader, image_model)

    assert result.returncode == 2, result.stderr
    assert str(image_model) in result.error_line
    assert file_and_field in result.error_line
    assert not list(container.list_blobs())

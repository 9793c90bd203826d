"""Before publish: what a version directory declares for an image model (model_spec) must fit
its ONNX graph, the way the app will read it at load (first input, first output)."""

from pathlib import Path

import model_spec
from model_loader.errors import UsageError
from model_spec.image_input import ONNX_INPUT


def check_declarations(source: Path, files: list[str]) -> None:
    """Refuse (UsageError, one line naming the file and field) a preprocessor_config.json or
    labels that don't parse or don't fit the model. onnx is imported only when there are any."""
    models = [path for path in files if path.endswith(".onnx")]
    try:
        labels = model_spec.read_labels(source, ())  # parse only: no class dimension yet
        declares_images = (source / model_spec.PREPROCESSOR_CONFIG).is_file()
        if labels is None and not declares_images:
            return
        if len(models) != 1:
            declared = model_spec.PREPROCESSOR_CONFIG if declares_images else "labels"
            raise UsageError(
                f"{source}: {declared} needs exactly one .onnx file, found {len(models)}"
            )
        inputs, output_shape = _graph_io(source / models[0])
        model_spec.read_image_input(source, inputs[0][1])
        model_spec.read_labels(source, output_shape)
        if declares_images and len(inputs) != 1:
            raise UsageError(
                f"{source}: {model_spec.PREPROCESSOR_CONFIG}: images need a model with one "
                f"input; {models[0]} takes {[name for name, _ in inputs]}"
            )
    except model_spec.SpecError as exc:
        if exc.file == ONNX_INPUT:  # about the graph: name the .onnx file
            raise UsageError(f"{source}: {models[0]}: input {exc.field}: {exc.problem}") from None
        raise UsageError(f"{source}: {exc}") from None


def _graph_io(path: Path) -> tuple[list[tuple[str, tuple[int, ...]]], tuple[int, ...]]:
    """The graph's inputs (name, shape) and its first output's shape; -1 for a dynamic dim."""
    import onnx
    from google.protobuf.message import Error as ProtobufError

    try:
        graph = onnx.load(path, load_external_data=False).graph
    except (ProtobufError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable ONNX model ({exc})") from None
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [(v.name, _shape(v)) for v in graph.input if v.name not in weights]
    if not inputs or not graph.output:
        raise UsageError(f"{path}: the graph has no input or no output")
    return inputs, _shape(graph.output[0])


def _shape(value) -> tuple[int, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)

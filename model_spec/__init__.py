"""What a model version directory declares beside its .onnx file, parsed and checked.

Standard library only: the loader (publish) and the app (load) both use it.
"""

from model_spec.errors import SpecError
from model_spec.image_input import ImageInput, read_image_input
from model_spec.labels import HF_CONFIG, LABELS_TXT, read_labels
from model_spec.preprocessing import PREPROCESSOR_CONFIG, Preprocessing, Resize

__all__ = [
    "HF_CONFIG",
    "LABELS_TXT",
    "PREPROCESSOR_CONFIG",
    "ImageInput",
    "Preprocessing",
    "Resize",
    "SpecError",
    "read_image_input",
    "read_labels",
]

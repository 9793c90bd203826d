"""Train the tests' tabular model: a digits classifier (scikit-learn's bundled 8x8 digits, no
download) exported to ONNX, in a directory ready for `model_loader publish`. (`make
sample-model` builds the sample image model instead: local/sample_image_model.py.)

    python -m tests.support.sample_model --out DIR [--sklearn-out model.joblib]
"""

import argparse
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

INPUT_NAME = "pixels"


def train(seed: int = 0):
    """The fitted pipeline and held-out test data (float32 [N, 64], 0-16 pixel values)."""
    digits = load_digits()
    features = digits.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        features, digits.target, test_size=0.25, random_state=seed
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(x_train, y_train)
    return model, x_test, y_test


def export_onnx(model) -> bytes:
    """ONNX with plain tensor outputs: label int64 [N], probabilities float32 [N, 10]."""
    onnx_model = to_onnx(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, 64]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    return onnx_model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for model.onnx")
    parser.add_argument("--sklearn-out", type=Path, help="also save the fitted model (joblib)")
    args = parser.parse_args()
    model, x_test, y_test = train()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.onnx").write_bytes(export_onnx(model))
    if args.sklearn_out:
        import joblib

        joblib.dump(model, args.sklearn_out)
    print(f"{args.out / 'model.onnx'}: test accuracy {model.score(x_test, y_test):.3f}")


if __name__ == "__main__":
    main()

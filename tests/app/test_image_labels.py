"""Labels out (app/labels.py): probabilities kept, logits softmaxed, the top k in order."""

import numpy as np
import pytest

from app.errors import ApiError
from app.labels import classify, probabilities, top_k_param

LABELS = ("cat", "dog", "bird")


def test_rows_that_are_already_probabilities_are_kept_as_they_are():
    scores = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]], dtype=np.float32)

    np.testing.assert_allclose(probabilities(scores), scores, rtol=1e-6)


def test_logits_get_a_softmax():
    logits = np.array([[2.0, 1.0, 0.0], [0.3, 0.3, 0.4]])  # 2nd row sums to 1 but 1st is logits
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    np.testing.assert_allclose(probabilities(logits), expected, rtol=1e-9)


def test_negative_scores_are_logits_even_when_a_row_sums_to_one():
    logits = np.array([[1.5, -0.5, 0.0]])

    assert probabilities(logits)[0].sum() == pytest.approx(1.0)
    assert (probabilities(logits) > 0).all()


def test_large_logits_do_not_overflow():
    result = probabilities(np.array([[1000.0, 999.0, -1000.0]]))

    assert np.isfinite(result).all() and result[0, 0] == pytest.approx(1 / (1 + np.exp(-1)))


def test_each_row_is_labelled_with_its_best_class_and_the_top_k_best_first():
    answers = classify(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]), LABELS, 2)

    assert answers[0] == {
        "label": "dog",
        "index": 1,
        "score": pytest.approx(0.7),
        "top_k": [
            {"label": "dog", "index": 1, "score": pytest.approx(0.7)},
            {"label": "bird", "index": 2, "score": pytest.approx(0.2)},
        ],
    }
    assert [entry["label"] for entry in answers[1]["top_k"]] == ["cat", "bird"]


def test_a_non_finite_output_scores_null_and_ranks_last():
    answers = classify(np.array([[np.nan, 1.0, 2.0]]), LABELS, 3)

    assert [entry["score"] for entry in answers[0]["top_k"]] == [None, None, None]
    finite = classify(np.array([[0.2, np.nan, 0.5]]), LABELS, 3)[0]
    assert finite["top_k"][-1]["score"] is None


@pytest.mark.parametrize(("raw", "expected"), [(None, 3), ("1", 1), ("2", 2), ("50", 3)])
def test_top_k_defaults_to_5_and_is_capped_at_the_class_count(raw, expected):
    assert top_k_param(raw, 3) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "two", "", " 2", "\uff11", "1" * 10])
def test_a_bad_top_k_is_a_400_naming_it(raw):
    with pytest.raises(ApiError) as error:
        top_k_param(raw, 3)

    assert error.value.status == 400 and "top_k" in error.value.message

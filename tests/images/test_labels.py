"""model_spec: labels from config.json id2label or labels.txt, checked against the classes."""

import json
from pathlib import Path

import pytest

from model_spec import HF_CONFIG, LABELS_TXT, SpecError, read_labels


def write_config(directory: Path, id2label) -> None:
    (directory / HF_CONFIG).write_text(json.dumps({"model_type": "vit", "id2label": id2label}))


def test_labels_txt_one_a_line_in_index_order(tmp_path: Path):
    (tmp_path / LABELS_TXT).write_text("0\n90\r\n180\n270\n", newline="")
    assert read_labels(tmp_path, (-1, 4)) == ("0", "90", "180", "270")


def test_id2label_in_index_order_whatever_the_key_order(tmp_path: Path):
    write_config(tmp_path, {"1": "dog", "0": "cat", "2": "crane", "3": "crane"})
    assert read_labels(tmp_path, (-1, 4)) == ("cat", "dog", "crane", "crane")


def test_a_dynamic_class_dimension_takes_any_count(tmp_path: Path):
    write_config(tmp_path, {"0": "a", "1": "b"})
    assert read_labels(tmp_path, (-1, -1)) == ("a", "b")


def test_no_labels_gives_none(tmp_path: Path):
    assert read_labels(tmp_path, (-1, 4)) is None
    (tmp_path / HF_CONFIG).write_text('{"model_type": "vit"}')
    assert read_labels(tmp_path, (-1, 4)) is None


def test_both_files_agreeing_is_fine(tmp_path: Path):
    write_config(tmp_path, {"0": "a", "1": "b"})
    (tmp_path / LABELS_TXT).write_text("a\nb\n")
    assert read_labels(tmp_path, (1, 2)) == ("a", "b")


def refusal(directory: Path, output_shape=(-1, 3)) -> str:
    with pytest.raises(SpecError) as caught:
        read_labels(directory, output_shape)
    return str(caught.value)


def test_label_count_must_equal_the_class_dimension(tmp_path: Path):
    (tmp_path / LABELS_TXT).write_text("a\nb\n")
    assert refusal(tmp_path) == "labels.txt: labels: 2 labels but the model output has 3 classes"
    (tmp_path / LABELS_TXT).unlink()
    write_config(tmp_path, {"0": "a", "1": "b"})
    assert refusal(tmp_path) == "config.json: id2label: 2 labels but the model output has 3 classes"


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({"0": "a", "2": "b", "1": "c", "4": "d"}, "id2label: ids must be 0..3; 3 is missing"),
        ({"0": "a", "x": "b"}, "id2label: key 'x' is not a class index"),
        ({"0": "a", "01": "b"}, "id2label: key '01' is not a class index"),
        ({"0": "a", "-1": "b"}, "id2label: key '-1' is not a class index"),
        ({"0": "a", "1": ""}, "id2label.1: must be a non-empty string"),
        ({"0": "a", "1": 5}, "id2label.1: must be a non-empty string"),
        ({}, "id2label: must be a non-empty object"),
        (["a"], "id2label: must be a non-empty object"),
    ],
)
def test_bad_id2label_is_refused(tmp_path: Path, id2label, expected):
    write_config(tmp_path, id2label)
    assert refusal(tmp_path, (-1, -1)) == f"config.json: {expected}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a\n\nb\n", "labels.txt: line 2: is empty (one label a line)"),
        (b"", "labels.txt: labels: the file is empty"),
        (b"\xff\xfe", "labels.txt: file: is not UTF-8"),
    ],
)
def test_bad_labels_txt_is_refused(tmp_path: Path, content, expected):
    (tmp_path / LABELS_TXT).write_bytes(content)
    assert refusal(tmp_path, (-1, -1)) == expected


def test_disagreeing_files_are_refused(tmp_path: Path):
    write_config(tmp_path, {"0": "a", "1": "b"})
    (tmp_path / LABELS_TXT).write_text("b\na\n")
    assert "labels.txt: labels: differ from config.json id2label" in refusal(tmp_path, (-1, 2))


def test_bad_config_json_is_refused(tmp_path: Path):
    (tmp_path / HF_CONFIG).write_text("not json")
    assert refusal(tmp_path).startswith("config.json: json: Expecting value")


def test_an_oversized_labels_txt_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("model_spec.labels.MAX_BYTES", 10)
    (tmp_path / LABELS_TXT).write_text("a\nb\nc\nd\ne\nf\n")
    assert refusal(tmp_path, (-1, 6)) == "labels.txt: file: larger than 10 bytes"

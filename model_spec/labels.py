"""Class labels: config.json id2label (Hugging Face) or labels.txt (one a line, index order)."""

from pathlib import Path

from model_spec.errors import SpecError
from model_spec.jsonfile import MAX_BYTES, read_object

HF_CONFIG = "config.json"
LABELS_TXT = "labels.txt"


def read_labels(directory: Path, output_shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """The labels a version directory declares, checked against the output's class dimension
    (its last, when fixed); None when it declares none."""
    directory = Path(directory)
    from_config = _from_config(directory / HF_CONFIG)
    from_txt = _from_txt(directory / LABELS_TXT)
    if from_config is not None and from_txt is not None and from_config != from_txt:
        raise SpecError(LABELS_TXT, "labels", f"differ from {HF_CONFIG} id2label; keep one")
    labels = from_config if from_config is not None else from_txt
    if labels is None:
        return None
    file, field = (HF_CONFIG, "id2label") if from_config is not None else (LABELS_TXT, "labels")
    classes = output_shape[-1] if output_shape else -1
    if classes > 0 and len(labels) != classes:
        raise SpecError(
            file, field, f"{len(labels)} labels but the model output has {classes} classes"
        )
    return labels


def _from_config(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    id2label = read_object(path).get("id2label")
    if id2label is None:
        return None
    if not isinstance(id2label, dict) or not id2label:
        raise SpecError(HF_CONFIG, "id2label", "must be a non-empty object")
    labels: dict[int, str] = {}
    for key, label in id2label.items():
        if not (key.isascii() and key.isdigit()) or (len(key) > 1 and key[0] == "0"):
            raise SpecError(HF_CONFIG, "id2label", f"key {key!r} is not a class index")
        if not isinstance(label, str) or not label.strip():
            raise SpecError(HF_CONFIG, f"id2label.{key}", "must be a non-empty string")
        labels[int(key)] = label
    if sorted(labels) != list(range(len(labels))):
        missing = min(set(range(len(labels))) - set(labels))
        problem = f"ids must be 0..{len(labels) - 1}; {missing} is missing"
        raise SpecError(HF_CONFIG, "id2label", problem)
    return tuple(labels[i] for i in range(len(labels)))


def _from_txt(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        text = raw.decode("utf-8-sig")
    except OSError as e:
        raise SpecError(LABELS_TXT, "file", f"cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise SpecError(LABELS_TXT, "file", "is not UTF-8") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(LABELS_TXT, "file", f"larger than {MAX_BYTES} bytes")
    lines = text.splitlines()
    if not lines:
        raise SpecError(LABELS_TXT, "labels", "the file is empty")
    labels = tuple(line.strip() for line in lines)
    for number, label in enumerate(labels, start=1):
        if not label:
            raise SpecError(LABELS_TXT, f"line {number}", "is empty (one label a line)")
    return labels

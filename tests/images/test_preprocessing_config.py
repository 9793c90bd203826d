"""model_spec: preprocessor_config.json parsed to the rules transformers applies, or refused."""

import json
from pathlib import Path

import pytest

from model_spec import PREPROCESSOR_CONFIG, Resize, SpecError, read_image_input
from model_spec.preprocessing import parse_preprocessing

VIT = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 224, "width": 224},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


def refusal(config: dict) -> str:
    with pytest.raises(SpecError) as caught:
        parse_preprocessing(config)
    return str(caught.value)


def test_vit_style_resizes_to_height_and_width():
    p = parse_preprocessing(VIT)
    assert p.resize == Resize(resample=2, height=224, width=224)
    assert p.resize.target(480, 640) == (224, 224)
    assert (p.center_crop, p.rescale_factor) == (None, 1 / 255)
    assert (p.mean, p.std) == ((0.5,) * 3, (0.5,) * 3)
    assert p.fixed_size == (224, 224)


def test_clip_style_resizes_the_short_side_then_crops():
    p = parse_preprocessing(
        {
            "image_processor_type": "CLIPImageProcessor",
            "size": {"shortest_edge": 224},
            "do_center_crop": True,
            "crop_size": {"height": 224, "width": 224},
        }
    )
    assert p.resize.target(480, 640) == (224, 298)  # int(224 * 640 / 480)
    assert p.resize.target(640, 480) == (298, 224)
    assert p.resize.crop is None
    assert p.center_crop == (224, 224)
    assert p.mean == (0.48145466, 0.4578275, 0.40821073)  # CLIP's class defaults fill the rest
    assert p.resize.resample == 3


def test_convnext_crop_pct_resizes_to_short_side_over_crop_pct_then_crops():
    p = parse_preprocessing(
        {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}}
    )
    assert p.resize.crop_pct == 224 / 256  # the class default
    assert p.resize.target(480, 640) == (256, 341)  # short side int(224 / 0.875) = 256
    assert p.resize.crop == (224, 224)
    assert p.fixed_size == (224, 224)


def test_convnext_from_384_up_warps_without_cropping():
    p = parse_preprocessing(
        {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 384}}
    )
    assert p.resize.target(480, 640) == (384, 384)
    assert p.resize.crop is None
    assert p.fixed_size == (384, 384)


def test_crop_pct_without_a_processor_type_uses_the_convnext_rule():
    p = parse_preprocessing(
        {"do_resize": True, "size": {"shortest_edge": 224}, "crop_pct": 0.95, "resample": 3}
    )
    assert p.resize.target(300, 300) == (235, 235)  # int(224 / 0.95)
    assert p.resize.crop == (224, 224)


def test_old_resnet_config_with_an_integer_size_means_shortest_edge():
    # microsoft/resnet-50's file, written by a transformers 4 feature extractor
    p = parse_preprocessing(
        {
            "crop_pct": 0.875,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "ConvNextFeatureExtractor",
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "resample": 3,
            "size": 224,
        }
    )
    assert p.resize == Resize(resample=3, shortest_edge=224, crop_pct=0.875)
    assert p.rescale_factor == 1 / 255  # do_rescale: the class default


def test_old_vit_config_with_an_integer_size_means_a_square():
    p = parse_preprocessing({**VIT, "size": 384, "feature_extractor_type": "ViTFeatureExtractor"})
    assert p.fixed_size == (384, 384)


def test_metadata_and_neutral_call_options_are_accepted():
    fast = parse_preprocessing(
        {
            **VIT,
            "image_processor_type": "ViTImageProcessorFast",
            "processor_class": "ViTProcessor",
            "data_format": "channels_first",
            "input_data_format": None,
            "do_pad": False,
            "return_tensors": None,
        }
    )
    assert fast == parse_preprocessing(VIT)


def test_steps_switched_off_are_skipped():
    p = parse_preprocessing({**VIT, "do_rescale": False, "do_normalize": False})
    assert (p.rescale_factor, p.mean, p.std) == (None, None, None)


def test_null_means_the_class_default_as_in_transformers():
    p = parse_preprocessing({**VIT, "resample": None, "image_mean": None})
    assert p.resize.resample == 2
    assert p.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"do_reduce_labels": True}, "do_reduce_labels: not a supported field"),
        ({"auto_map": {"AutoImageProcessor": "x.Y"}}, "auto_map: not a supported field"),
        ({"image_processor_type": "LevitImageProcessor"}, "LevitImageProcessor is not supported"),
        ({"crop_pct": 0.9}, "crop_pct: ViTImageProcessor does not use it"),
        ({"size": {"shortest_edge": 224, "longest_edge": 1333}}, "size: must have keys height"),
        ({"size": {"height": 224}}, "size: must have keys height and width"),
        ({"size": {"height": 0, "width": 224}}, "size.height: must be an integer from 1"),
        ({"size": {"height": 224.0, "width": 224}}, "size.height: must be an integer"),
        ({"size": "224"}, "size: must be an object"),
        ({"resample": 7}, "resample: must be a PIL code"),
        ({"resample": True}, "resample: must be a PIL code"),
        ({"do_resize": "yes"}, "do_resize: must be true or false"),
        ({"do_normalize": 1}, "do_normalize: must be true or false"),
        ({"rescale_factor": 0}, "rescale_factor: must be a number positive"),
        ({"image_std": [0.5, 0, 0.5]}, "image_std: must be a number or a list of positive"),
        ({"image_mean": []}, "image_mean: must be a number or a list"),
        ({"image_mean": ["0.5"]}, "image_mean: must be a number or a list"),
        ({"data_format": "channels_last"}, 'data_format: only null, "channels_first"'),
        ({"do_pad": True}, "do_pad: only null, false is supported, got true"),
        ({"image_processor_type": 3}, "image_processor_type: must be a string"),
        ({"do_convert_rgb": "true"}, "do_convert_rgb: must be true or false"),
        ({"default_to_square": 0}, "default_to_square: must be true or false"),
        ({"size": {"height": 8193, "width": 224}}, "size.height: must be an integer from 1 to"),
        ({"do_center_crop": True, "crop_size": [224, 224]}, "crop_size: must be an object"),
    ],
)
def test_refusals_name_the_file_and_the_field(change, expected):
    message = refusal({**VIT, **change})
    assert message.startswith(f"{PREPROCESSOR_CONFIG}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"size": {"height": 224, "width": 224}}, "do_resize: missing while size is given"),
        ({"do_resize": False, "image_mean": [0.5]}, "do_normalize: missing while image_mean"),
        ({"do_resize": True}, "size: missing while do_resize is true"),
        ({"do_center_crop": True}, "crop_size: missing while do_center_crop is true"),
        ({"do_normalize": True, "image_mean": [0.5]}, "image_std: missing while do_normalize"),
        (
            {"do_resize": True, "size": {"height": 9, "width": 9}, "crop_pct": 0.9},
            "crop_pct: needs size {shortest_edge}",
        ),
        (
            {"do_center_crop": True, "crop_size": {"shortest_edge": 9}},
            "crop_size: must be {height, width}",
        ),
        ({"do_resize": True, "size": 9, "crop_pct": 1.5}, "crop_pct: must be a number in (0, 1.0]"),
    ],
)
def test_without_a_processor_type_every_step_is_explicit(config, expected):
    assert expected in refusal(config)


def test_a_file_that_is_not_a_json_object_is_refused(tmp_path: Path):
    for text, expected in [("{", "json: Expecting"), ("[]", "json: must be an object")]:
        (tmp_path / PREPROCESSOR_CONFIG).write_text(text)
        with pytest.raises(SpecError, match=expected):
            read_image_input(tmp_path, (-1, 3, 224, 224))
    (tmp_path / PREPROCESSOR_CONFIG).write_text('{"rescale_factor": NaN}')
    with pytest.raises(SpecError, match="NaN is not a JSON number"):
        read_image_input(tmp_path, (-1, 3, 224, 224))


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("model_spec.jsonfile.MAX_BYTES", 100)
    (tmp_path / PREPROCESSOR_CONFIG).write_text(json.dumps(VIT))
    with pytest.raises(SpecError, match=r"preprocessor_config\.json: file: larger than 100 bytes"):
        read_image_input(tmp_path, (-1, 3, 224, 224))


def test_no_preprocessor_config_means_no_image_input(tmp_path: Path):
    assert read_image_input(tmp_path, (-1, 3, 224, 224)) is None


def test_read_image_input_reads_the_file(tmp_path: Path):
    (tmp_path / PREPROCESSOR_CONFIG).write_text(json.dumps(VIT))
    spec = read_image_input(tmp_path, (-1, 3, 224, 224))
    assert (spec.layout, spec.channels, spec.height, spec.width) == ("NCHW", 3, 224, 224)

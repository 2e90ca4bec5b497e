from __future__ import annotations

import pytest

from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.errors import UnknownPluginError

REQUIRED_MODELS = {"resnet50", "mobilenet", "ssd-mobilenet", "ssd-resnet34", "retinanet", "yolo",
                   "efficientnet-lite0-demo"}


def test_catalog_has_every_model_and_dataset_the_issue_names() -> None:
    catalog = load_catalog()
    assert {m.name for m in catalog.models} >= REQUIRED_MODELS
    assert {"imagenet", "coco", "openimages", "demo-imagenet"} <= {d.name for d in catalog.datasets}


def test_resnet50_card_carries_the_official_facts() -> None:
    card = load_catalog().model("resnet50")
    assert {f.id for f in card.formats} >= {"onnx-opset11", "onnx-opset8", "tensorflow", "pytorch"}
    opset11 = card.format("onnx-opset11")
    assert "https://zenodo.org/record/4735647/files/resnet50_v1.onnx" in opset11.urls
    assert opset11.inputs[0].name == "input_tensor:0"
    assert opset11.postprocess.outputs == ("ArgMax:0",) and opset11.postprocess.offset == -1
    assert card.accuracy.reference == pytest.approx(76.456)
    assert card.accuracy.closed_target == pytest.approx(76.46 * 0.99)
    assert card.performance_sample_count == 1024 and card.server_target_latency_ms == 15
    assert card.format("pytorch").preprocess == "imagenet-pytorch"


def test_every_format_has_a_known_recipe_and_shape() -> None:
    catalog = load_catalog()
    for card in catalog.models:
        for fmt in card.formats:
            recipe = catalog.recipe(fmt.preprocess)
            layout_shape = recipe.sample_shape
            declared = fmt.inputs[0].shape[1:]
            assert tuple(declared) == layout_shape, (card.name, fmt.id)


def test_demo_set_has_at_least_twelve_labelled_photos() -> None:
    card = load_catalog().dataset("demo-imagenet")
    assert len(card.photos) >= 12
    assert all(0 <= p.label < 1000 and len(p.sha256) == 64 for p in card.photos)
    assert len({p.id for p in card.photos}) == len(card.photos)


def test_unknown_format_lists_formats() -> None:
    with pytest.raises(UnknownPluginError) as info:
        load_catalog().model("resnet50").format("onnx-opset99")
    assert "onnx-opset11" in (info.value.hint or "")

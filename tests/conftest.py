"""Shared fixtures: an isolated cache, tiny datasets and tiny real ONNX models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from builders import (
    make_failing_classifier,
    make_imagenet_folder,
    make_logits_classifier,
    make_resnet50_shaped,
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> Path:
    """Every test gets its own cache unless it asks for another."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MLPERF_PILOT_CACHE", str(cache))
    return cache


@pytest.fixture
def cache_dir() -> Path:
    import os

    return Path(os.environ["MLPERF_PILOT_CACHE"])


@pytest.fixture(scope="session")
def colour_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 colour photos in ImageNet layout, all labelled right."""
    root = tmp_path_factory.mktemp("colour-imagenet")
    make_imagenet_folder(root, 24)
    return root


@pytest.fixture(scope="session")
def logits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logits_classifier(tmp_path_factory.mktemp("models") / "logits.onnx")


@pytest.fixture(scope="session")
def resnet50_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_resnet50_shaped(tmp_path_factory.mktemp("models") / "resnet50_v1.onnx")


@pytest.fixture(scope="session")
def failing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_failing_classifier(tmp_path_factory.mktemp("models") / "failing.onnx")

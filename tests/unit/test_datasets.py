from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builders import make_imagenet_folder
from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.datasets.imagenet import load_imagenet, parse_val_map
from mlperf_pilot.datasets.prepared import ArrayDataset, prepare_images
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.errors import DatasetError
from mlperf_pilot.progress import RecordingProgress


def test_val_map_order_defines_qsl_indices(tmp_path: Path) -> None:
    labels = make_imagenet_folder(tmp_path, 6)
    images = load_imagenet(tmp_path)
    assert images.files[0] == "val/img_00000.jpg"
    assert images.labels.tolist() == labels
    assert len(load_imagenet(tmp_path, count=4)) == 4


def test_missing_image_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path, 5)
    (tmp_path / "val/img_00003.jpg").unlink()
    with pytest.raises(DatasetError) as info:
        load_imagenet(tmp_path)
    assert "img_00003.jpg" in info.value.message
    # with --count 3 the missing image is not needed
    assert len(load_imagenet(tmp_path, count=3)) == 3


def test_bad_list_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"val_map\.txt"):
        load_imagenet(tmp_path)
    (tmp_path / "val_map.txt").write_text("a.jpg 1\nb.jpg one\n")
    with pytest.raises(DatasetError, match=r"val_map.txt:2"):
        parse_val_map(tmp_path / "val_map.txt")
    with pytest.raises(DatasetError, match="does not exist"):
        load_imagenet(tmp_path / "absent")


def test_preprocessing_is_cached_and_incremental(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "data", 10)
    cache = AssetCache(tmp_path / "cache")
    recipe = load_catalog().recipe("imagenet-efficientnet-lite")
    first = prepare_images(load_imagenet(tmp_path / "data", count=4), recipe, cache, workers=1)
    assert first.built_now == 4 and first.count == 4
    again = prepare_images(load_imagenet(tmp_path / "data", count=4), recipe, cache, workers=1)
    assert again.built_now == 0 and again.folder == first.folder
    more = prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    assert more.built_now == 6
    assert more.read(9).shape == (3, 224, 224)
    # a different recipe is a different entry
    other = prepare_images(load_imagenet(tmp_path / "data", count=2),
                           load_catalog().recipe("imagenet-pytorch"), cache, workers=1)
    assert other.folder != first.folder and other.built_now == 2


def test_parallel_preprocessing_matches_serial_and_reports_progress(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "data", 40)
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    serial = prepare_images(load_imagenet(tmp_path / "data"), recipe,
                            AssetCache(tmp_path / "c1"), workers=1)
    progress = RecordingProgress()
    parallel = prepare_images(load_imagenet(tmp_path / "data"), recipe,
                              AssetCache(tmp_path / "c2"), workers=2, progress=progress)
    assert parallel.built_now == 40
    for index in (0, 17, 39):
        np.testing.assert_array_equal(serial.read(index), parallel.read(index))


def test_unreadable_image_fails_preprocessing_naming_it(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "data", 3)
    (tmp_path / "data/val/img_00001.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"img_00001\.jpg"):
        prepare_images(load_imagenet(tmp_path / "data"),
                       load_catalog().recipe("imagenet-vgg-nchw"),
                       AssetCache(tmp_path / "cache"), workers=1)


def test_sample_store_loads_gathers_and_unloads() -> None:
    samples = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    store = SampleStore(ArrayDataset(samples, np.zeros(10, np.int64)))
    store.load([7, 2, 7, 5])
    assert store.loaded == 3
    one = store.gather(np.array([5]))
    assert np.shares_memory(one, store._data)  # a single sample is a view
    out = np.empty((4, 2, 3), np.float32)
    batch = store.gather(np.array([2, 7, 5]), out)
    np.testing.assert_array_equal(batch, samples[[2, 7, 5]])
    assert np.shares_memory(batch, out)
    with pytest.raises(DatasetError, match="sample 3 was not loaded"):
        store.gather(np.array([3]))
    store.unload([7, 2, 5])
    assert store.loaded == 0


def test_sample_store_load_never_raises_into_loadgen() -> None:
    class Broken(ArrayDataset):
        def read(self, index: int) -> np.ndarray:
            raise DatasetError("preprocessed sample 1 cannot be read")

    store = SampleStore(Broken(np.zeros((3, 2), np.float32), np.zeros(3, np.int64)))
    store.load([1])  # must not raise
    assert store.error and "sample 1 cannot be read" in store.error
    with pytest.raises(DatasetError, match="cannot be read"):
        store.gather(np.array([1]))


def test_plan_batches_covers_every_sample_once_mostly_without_copies() -> None:
    rng = np.random.default_rng(3)
    samples = np.zeros((64, 2), np.float32)
    store = SampleStore(ArrayDataset(samples, np.zeros(64, np.int64)))
    store.load(list(range(64)))
    query = rng.integers(0, 64, size=3000)  # an Offline query repeats loaded samples
    batches = store.plan_batches(query, 8)
    positions = np.concatenate(batches)
    assert sorted(positions.tolist()) == list(range(3000))
    assert all(len(b) <= 8 for b in batches)
    assert sum(len(b) < 8 for b in batches) <= 1  # leftovers are packed into full batches
    views = 0
    for batch in batches:
        got = store.gather(query[batch], np.empty((8, 2), np.float32))
        views += np.shares_memory(got, store._data)
    assert views / len(batches) > 0.8

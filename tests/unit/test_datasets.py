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


# --- the list file: paths, encodings, labels -------------------------------------------


@pytest.mark.parametrize("name", ["../outside.jpg", "val/../../outside.jpg",
                                  "/etc/passwd", "val/../../../outside.jpg"])
def test_list_entries_reading_outside_the_dataset_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "data"
    make_imagenet_folder(root, 3)
    (tmp_path / "outside.jpg").write_bytes((root / "val/img_00000.jpg").read_bytes())
    lines = (root / "val_map.txt").read_text().splitlines()
    lines.insert(1, f"{name} 0")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        load_imagenet(root)
    assert "val_map.txt:2" in info.value.message and name in info.value.message
    assert "outside the dataset folder" in info.value.message
    assert info.value.hint


def test_bom_and_crlf_list_files_are_read(tmp_path: Path) -> None:
    labels = make_imagenet_folder(tmp_path, 4)
    text = (tmp_path / "val_map.txt").read_text()
    (tmp_path / "val_map.txt").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    images = load_imagenet(tmp_path)
    assert images.files[0] == "val/img_00000.jpg"
    assert images.labels.tolist() == labels


def test_a_list_file_that_is_not_utf8_names_the_file_and_the_fix(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path, 2)
    (tmp_path / "val_map.txt").write_bytes("val/caf\u00e9.jpg 0\n".encode("latin-1"))
    with pytest.raises(DatasetError) as info:
        load_imagenet(tmp_path)
    assert str(tmp_path / "val_map.txt") in info.value.message
    assert "UTF-8" in info.value.message and "line 1" in info.value.message
    assert info.value.hint and "UTF-8" in info.value.hint


@pytest.mark.parametrize(("label", "words"), [
    ("1000", "outside 0-999"), ("100000000000000000000000", "outside 0-999"),
    ("-1", "outside 0-999"), ("1e3", "not an integer"), ("NaN", "not an integer")])
def test_labels_outside_the_classes_are_refused_with_the_line(tmp_path: Path, label: str,
                                                              words: str) -> None:
    make_imagenet_folder(tmp_path, 3)
    lines = (tmp_path / "val_map.txt").read_text().splitlines()
    lines[2] = lines[2].split()[0] + " " + label
    (tmp_path / "val_map.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        load_imagenet(tmp_path)
    assert "val_map.txt:3" in info.value.message and words in info.value.message
    assert info.value.hint


def test_the_class_count_comes_from_the_caller(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path, 3)  # labels 0, 1, 2
    assert len(load_imagenet(tmp_path, classes=3)) == 3
    with pytest.raises(DatasetError, match="outside 0-1"):
        load_imagenet(tmp_path, classes=2)


@pytest.mark.parametrize("recipe", ["imagenet-vgg-nchw", "imagenet-efficientnet-lite"])
@pytest.mark.parametrize("cut", [2, 400])
def test_a_truncated_jpeg_is_refused_naming_it(tmp_path: Path, recipe: str, cut: int) -> None:
    make_imagenet_folder(tmp_path / "data", 3)
    photo = tmp_path / "data/val/img_00001.jpg"
    photo.write_bytes(photo.read_bytes()[:-cut])
    cache = AssetCache(tmp_path / "cache")
    with pytest.raises(DatasetError) as info:
        prepare_images(load_imagenet(tmp_path / "data"), load_catalog().recipe(recipe), cache,
                       workers=1)
    assert str(photo) in info.value.message and "truncated" in info.value.message
    assert info.value.hint


# --- preprocessed samples are never stale ----------------------------------------------


def test_a_replaced_image_is_preprocessed_again(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "data", 6)
    cache = AssetCache(tmp_path / "cache")
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    first = prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    red = first.read(0).copy()
    # replace the red photo 0 with the blue photo 2 (same size: only the content differs)
    photo = tmp_path / "data/val/img_00000.jpg"
    photo.write_bytes((tmp_path / "data/val/img_00002.jpg").read_bytes())
    again = prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    assert again.built_now == 1 and again.folder == first.folder
    np.testing.assert_array_equal(again.read(0), again.read(2))
    assert not np.array_equal(again.read(0), red)
    # untouched: nothing to do
    assert prepare_images(load_imagenet(tmp_path / "data"), recipe, cache,
                          workers=1).built_now == 0


def test_a_touched_but_unchanged_image_is_not_preprocessed_again(tmp_path: Path) -> None:
    import os

    make_imagenet_folder(tmp_path / "data", 3)
    cache = AssetCache(tmp_path / "cache")
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    photo = tmp_path / "data/val/img_00001.jpg"
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 5_000_000_000))
    assert prepare_images(load_imagenet(tmp_path / "data"), recipe, cache,
                          workers=1).built_now == 0


@pytest.mark.parametrize("damage", ["truncate", "empty", "delete", "garbage-header"])
def test_a_damaged_cached_sample_is_rebuilt(tmp_path: Path, damage: str) -> None:
    make_imagenet_folder(tmp_path / "data", 4)
    cache = AssetCache(tmp_path / "cache")
    recipe = load_catalog().recipe("imagenet-vgg-nchw")
    first = prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    good = first.read(2).copy()
    sample = first.sample_path(2)
    data = sample.read_bytes()
    if damage == "truncate":
        sample.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        sample.write_bytes(b"")
    elif damage == "delete":
        sample.unlink()
    else:
        sample.write_bytes(b"X" * 16 + data[16:])
    again = prepare_images(load_imagenet(tmp_path / "data"), recipe, cache, workers=1)
    assert again.built_now == 1
    np.testing.assert_array_equal(again.read(2), good)


def test_reading_a_sample_damaged_during_the_run_names_the_cache_entry(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "data", 2)
    cache = AssetCache(tmp_path / "cache")
    prepared = prepare_images(load_imagenet(tmp_path / "data"),
                              load_catalog().recipe("imagenet-vgg-nchw"), cache, workers=1)
    prepared.sample_path(1).write_bytes(prepared.sample_path(1).read_bytes()[:200])
    with pytest.raises(DatasetError) as info:
        prepared.read(1)
    assert "mlperf-pilot cache clear imagenet-3x224x224" in (info.value.hint or "")

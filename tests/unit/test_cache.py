from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from mlperf_pilot.assets.cache import AssetCache, BuildResult, recipe_key
from mlperf_pilot.errors import AssetError, ConfigError


def _build_slowly(root: str, marker: str) -> str:
    cache = AssetCache(Path(root))

    def build(folder: Path) -> BuildResult:
        with open(marker, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)
        (folder / "model.onnx").write_bytes(b"x" * 100)
        return BuildResult(main="model.onnx", source="test")

    entry, _ = cache.get_or_build("model", "m", {"v": 1}, build)
    return str(entry.target)


def test_recipe_key_is_order_independent() -> None:
    assert recipe_key({"a": 1, "b": [1, 2]}) == recipe_key({"b": [1, 2], "a": 1})
    assert recipe_key({"a": 1}) != recipe_key({"a": 2})


def test_get_or_build_builds_once_and_records_a_manifest(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    calls = []

    def build(folder: Path) -> BuildResult:
        calls.append(folder)
        (folder / "f.bin").write_bytes(b"abc")
        return BuildResult(main="f.bin", source="unit test", meta={"k": 1})

    entry, built = cache.get_or_build("model", "demo", {"x": 1}, build)
    again, built_again = cache.get_or_build("model", "demo", {"x": 1}, build)
    assert built and not built_again and len(calls) == 1
    assert again.target.read_bytes() == b"abc"
    manifest = json.loads((entry.path / "manifest.json").read_text())
    assert manifest["recipe"] == {"x": 1} and manifest["meta"] == {"k": 1}
    assert manifest["size_bytes"] >= 3
    assert [e.name for e in cache.entries(kind="model")] == ["demo"]


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)

    def build(folder: Path) -> BuildResult:
        (folder / "half").write_bytes(b"x")
        raise AssetError("boom")

    with pytest.raises(AssetError):
        cache.get_or_build("model", "m", {"x": 1}, build)
    assert cache.entries() == []
    assert not any((tmp_path / "tmp").iterdir())


def test_two_processes_build_the_same_entry_once(tmp_path: Path) -> None:
    marker = tmp_path / "builds.txt"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_build_slowly, [(str(tmp_path / "c"), str(marker))] * 2)
    assert paths[0] == paths[1]
    assert marker.read_text().count("built") == 1


def test_external_entries_are_registered_not_copied(tmp_path: Path) -> None:
    data = tmp_path / "imagenet"
    data.mkdir()
    cache = AssetCache(tmp_path / "cache")
    entry = cache.add_external("dataset", "imagenet", data)
    assert entry.target == data.resolve() and entry.external
    assert cache.find_external("dataset", "imagenet") == entry
    cache.clear("imagenet")
    assert data.is_dir()  # the user's data is never deleted
    assert cache.find_external("dataset", "imagenet") is None
    with pytest.raises(ConfigError, match="does not exist"):
        cache.add_external("dataset", "imagenet", tmp_path / "absent")


def test_clear_all(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path)
    for name in ("a", "b"):
        cache.get_or_build("model", name, {"n": name},
                           lambda f: BuildResult(main=None, source="t"))
    assert len(cache.clear()) == 2 and cache.entries() == []


@pytest.mark.parametrize("damage", ["truncate", "same-size-edit", "delete"])
def test_a_damaged_model_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    from mlperf_pilot.assets.cache import AssetCache, BuildResult

    cache = AssetCache(tmp_path / "cache")
    builds: list[Path] = []

    def build(folder: Path) -> BuildResult:
        builds.append(folder)
        (folder / "m.onnx").write_bytes(b"model bytes " * 100)
        return BuildResult(main="m.onnx", source="test")

    entry, built = cache.get_or_build("model", "m", {"r": 1}, build)
    assert built and entry.files == {"m.onnx": (1200, entry.files["m.onnx"][1])}
    data = entry.target.read_bytes()
    if damage == "truncate":
        entry.target.write_bytes(data[:600])
    elif damage == "same-size-edit":
        entry.target.write_bytes(b"X" + data[1:])
    else:
        entry.target.unlink()
    assert cache.lookup("model", "m", entry.key) is None
    again, built = cache.get_or_build("model", "m", {"r": 1}, build)
    assert built and len(builds) == 2 and again.target.read_bytes() == data
    assert cache.get_or_build("model", "m", {"r": 1}, build)[1] is False


def test_a_changed_registered_model_is_refused_naming_the_commands(tmp_path: Path) -> None:
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.errors import ChecksumError

    cache = AssetCache(tmp_path / "cache")
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"a" * 50)
    cache.add_external("model", "resnet50", mine)
    assert cache.find_external("model", "resnet50").target == mine
    mine.write_bytes(b"b" * 50)
    with pytest.raises(ChecksumError) as info:
        cache.find_external("model", "resnet50")
    assert "sha256" in info.value.message and str(mine) in info.value.message
    assert "mlperf-pilot cache add resnet50" in info.value.hint
    assert "mlperf-pilot cache clear resnet50" in info.value.hint
    assert mine.read_bytes() == b"b" * 50  # the user's file is never touched

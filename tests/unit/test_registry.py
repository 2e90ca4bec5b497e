"""The one plugin idiom (mlperf_pilot.registry.Registry) and the registries built on it:
lazy imports, names registered in code, entry points of other packages (a temporary
dist-info on sys.path, nothing pip-installed), shadowing, and the errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from builders import make_imagenet_folder
from mlperf_pilot.accuracy import METRICS, GroundTruth, compute_accuracy
from mlperf_pilot.assets.builders import BUILDERS, get_builder
from mlperf_pilot.assets.convert import CONVERTERS, get_converter
from mlperf_pilot.backends import BACKENDS, Backend, backend_class
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.catalog.cards import AccuracySpec, ConvertSpec, DatasetCard, PostprocessSpec
from mlperf_pilot.datasets.layouts import LAYOUTS, read_dataset
from mlperf_pilot.decoders import DECODERS, create_decoder
from mlperf_pilot.errors import EXIT_USAGE, ConfigError, UnknownPluginError
from mlperf_pilot.registry import BUILTIN, Entry, Registry
from mlperf_pilot.sut.registry import SUT_KINDS
from plugin_dists import write_plugin_dist

GROUP = "mlperf_pilot_tests.widgets"  # a group of this test only: no real registry sees it


@pytest.fixture
def modules() -> Iterator[list[str]]:
    """Names of modules a test writes: removed from sys.modules afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def _module(folder: Path, name: str, source: str, modules: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    modules.append(name)


# ----------------------------------------------------------------------------- built-ins


def test_a_built_in_is_imported_only_when_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 modules: list[str]) -> None:
    _module(tmp_path, "lazy_widget_mod", "class Widget:\n    pass\n", modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[type] = Registry("widget", {"lazy": "lazy_widget_mod:Widget"})
    assert registry.names() == ["lazy"] and "lazy" in registry and "other" not in registry
    assert registry.entries() == [Entry("lazy", "lazy_widget_mod:Widget", BUILTIN)]
    assert "lazy_widget_mod" not in sys.modules  # listing imports nothing
    widget = registry.get("lazy")
    assert widget.__name__ == "Widget" and "lazy_widget_mod" in sys.modules
    assert registry.get("lazy") is widget


def test_the_real_registries_import_no_plugin_until_one_is_chosen() -> None:
    """In a fresh interpreter: naming every backend, SUT kind, decoder, metric, layout
    imports none of their modules (nor their frameworks); choosing one imports that one."""
    code = """
import json, sys
from mlperf_pilot.backends import BACKENDS, backend_class
from mlperf_pilot.decoders import DECODERS
from mlperf_pilot.accuracy import METRICS
from mlperf_pilot.datasets.layouts import LAYOUTS
from mlperf_pilot.sut.registry import SUT_KINDS
names = [r.names() for r in (BACKENDS, DECODERS, METRICS, LAYOUTS, SUT_KINDS)]
watched = ["mlperf_pilot.backends." + n for n in
           ("onnxruntime", "pytorch", "tensorflow", "tflite", "openvino", "opencv", "null")]
watched += ["onnxruntime", "torch", "tensorflow", "openvino", "cv2", "pycocotools",
            "mlperf_pilot.decoders.detection", "mlperf_pilot.accuracy.coco",
            "mlperf_pilot.sut.local_kind"]
before = [m for m in watched if m in sys.modules]
backend_class("null")
after = [m for m in watched if m in sys.modules]
print(json.dumps({"names": names, "before": before, "after": after}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert "onnxruntime" in found["names"][0] and "local" in found["names"][4]
    assert found["before"] == []
    assert found["after"] == ["mlperf_pilot.backends.null"]


def test_every_built_in_target_exists() -> None:
    for registry in (BACKENDS, DECODERS, METRICS, LAYOUTS, BUILDERS, CONVERTERS):
        for entry in registry.entries():
            if entry.origin == BUILTIN:
                assert callable(registry.get(entry.name)), (registry.kind, entry.name)
    for name in BACKENDS.names():
        if BACKENDS.origin(name) == BUILTIN:
            assert issubclass(backend_class(name), Backend)
            assert backend_class(name).name == name


def test_the_card_vocabulary_is_the_registries() -> None:
    """The names a card may use are exactly the registered ones."""
    def literal(model: type, field: str) -> set[str]:
        return set(get_args(model.model_fields[field].annotation))  # type: ignore[attr-defined]

    assert literal(PostprocessSpec, "kind") == set(DECODERS.names())
    assert literal(AccuracySpec, "metric") == set(METRICS.names())
    assert literal(ConvertSpec, "tool") == set(CONVERTERS.names())
    assert literal(DatasetCard, "layout") == set(LAYOUTS.names())
    catalog = load_catalog()
    used = {f.build.builder for card in catalog.models for f in card.formats if f.build}
    used |= {card.builder for card in catalog.datasets if card.builder} - {"demo-photos"}
    assert used <= set(BUILDERS.names())


# ------------------------------------------------------------------- registered in code


def test_register_and_unregister(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 modules: list[str]) -> None:
    _module(tmp_path, "reg_widget_mod", "class Widget:\n    pass\n", modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[object] = Registry("widget", {"lazy": "reg_widget_mod:Widget"})
    mine, replacement = object(), object()
    registry.register("mine", mine)
    assert registry.names() == ["lazy", "mine"] and registry.origin("mine") == "registered"
    assert registry.get("mine") is mine
    original = registry.get("lazy")
    registry.register("lazy", replacement)  # code may replace a built-in (tests do)
    assert registry.get("lazy") is replacement and registry.origin("lazy") == "registered"
    registry.unregister("lazy")
    registry.unregister("mine")
    registry.unregister("never-there")  # no error
    assert registry.names() == ["lazy"] and registry.origin("lazy") == BUILTIN
    assert registry.get("lazy") is original


# ----------------------------------------------------------------------- entry points


def test_entry_points_of_other_packages_are_found_and_loaded_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: list[str]
) -> None:
    site = tmp_path / "site"
    registry: Registry[type] = Registry("widget", {}, group=GROUP)
    ungrouped: Registry[type] = Registry("widget", {})
    monkeypatch.syspath_prepend(str(site))
    assert registry.names() == []  # discovered once, then cached
    write_plugin_dist(site, "acme-widgets", {GROUP: {"acme": "acme_widget_mod:Acme"}},
                      {"acme_widget_mod": "class Acme:\n    pass\n"})
    modules.append("acme_widget_mod")
    assert registry.names() == []
    registry.refresh()  # after an install: look again
    assert registry.entries() == [Entry("acme", "acme_widget_mod:Acme",
                                        "entry point of acme-widgets")]
    assert "acme_widget_mod" not in sys.modules
    assert registry.get("acme").__name__ == "Acme" and "acme_widget_mod" in sys.modules
    assert ungrouped.names() == []  # a registry without a group sees no entry points


def test_shadowing_registered_over_built_in_over_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: list[str]
) -> None:
    _module(tmp_path / "own", "own_widget_mod", "class Own:\n    pass\n", modules)
    first, second = tmp_path / "first", tmp_path / "second"
    write_plugin_dist(second, "second-widgets",
                      {GROUP: {"own": "second_widget_mod:Other", "dup": "second_widget_mod:Dup"}},
                      {"second_widget_mod": "class Other:\n    pass\nclass Dup:\n    pass\n"})
    write_plugin_dist(first, "first-widgets", {GROUP: {"dup": "first_widget_mod:Dup"}},
                      {"first_widget_mod": "class Dup:\n    pass\n"})
    modules += ["second_widget_mod", "first_widget_mod"]
    for folder in (tmp_path / "own", second, first):  # first ends up first on sys.path
        monkeypatch.syspath_prepend(str(folder))
    registry: Registry[object] = Registry("widget", {"own": "own_widget_mod:Own"}, group=GROUP)
    # a package cannot take a built-in name: its entry point of that name is ignored
    assert registry.origin("own") == BUILTIN
    assert registry.get("own").__name__ == "Own"  # type: ignore[attr-defined]
    assert "second_widget_mod" not in sys.modules
    # two packages, one name: the first on sys.path wins
    assert registry.origin("dup") == "entry point of first-widgets"
    assert registry.get("dup").__module__ == "first_widget_mod"  # type: ignore[attr-defined]
    # code beats both
    marker = object()
    registry.register("dup", marker)
    assert registry.get("dup") is marker and registry.origin("dup") == "registered"
    registry.unregister("dup")
    assert registry.origin("dup") == "entry point of first-widgets"


@pytest.mark.parametrize(("target", "source", "cause"), [
    ("no_such_widget_module_xyz:Thing", None, "ModuleNotFoundError"),
    ("broken_widget_mod:Missing", "class There:\n    pass\n", "AttributeError"),
    ("broken_widget_mod:There", "raise RuntimeError('vendor init failed\\nsecond line')\n",
     "RuntimeError: vendor init failed"),
])
def test_a_broken_entry_point_is_one_clean_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: list[str], target: str,
    source: str | None, cause: str,
) -> None:
    site = tmp_path / "site"
    write_plugin_dist(site, "broken-widgets", {GROUP: {"ghost": target}},
                      {"broken_widget_mod": source} if source else None)
    modules.append("broken_widget_mod")
    monkeypatch.syspath_prepend(str(site))
    registry: Registry[object] = Registry("widget", {}, group=GROUP)
    assert registry.names() == ["ghost"]  # listed: the failure shows only when chosen
    with pytest.raises(ConfigError) as info:
        registry.get("ghost")
    error = info.value
    assert not isinstance(error, UnknownPluginError)
    assert "\n" not in error.message and cause in error.message
    assert error.message.startswith(f"the widget 'ghost' (entry point {target} of "
                                    "broken-widgets) cannot be loaded: ")
    assert error.hint == "reinstall broken-widgets, or uninstall it"
    assert error.exit_code == EXIT_USAGE


@pytest.fixture
def backend_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: list[str]
                 ) -> Iterator[Path]:
    """A folder on sys.path whose packages the real BACKENDS registry sees."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    BACKENDS.refresh()
    yield site
    BACKENDS.refresh()  # later scans run after monkeypatch restored sys.path


def test_a_backend_from_an_entry_point(backend_site: Path, modules: list[str]) -> None:
    write_plugin_dist(backend_site, "vendor-null", {"mlperf_pilot.backends": {
        "vendor-null": "vendor_null_mod:VendorNull", "onnxruntime": "vendor_null_mod:VendorNull",
        "not-a-backend": "vendor_null_mod:helper"}}, {"vendor_null_mod": (
            "from mlperf_pilot.backends.null import NullBackend\n\n"
            "class VendorNull(NullBackend):\n    name = 'vendor-null'\n\n"
            "def helper():\n    return None\n")})
    modules.append("vendor_null_mod")
    BACKENDS.refresh()
    assert BACKENDS.origin("vendor-null") == "entry point of vendor-null"
    assert BACKENDS.origin("onnxruntime") == BUILTIN  # not shadowed
    assert backend_class("vendor-null").__name__ == "VendorNull"
    assert backend_class("onnxruntime").__module__ == "mlperf_pilot.backends.onnxruntime"
    with pytest.raises(ConfigError, match=r"not a subclass of mlperf_pilot\.backends\.Backend"):
        backend_class("not-a-backend")


# ------------------------------------------------------------------------ unknown names


def test_an_unknown_name_lists_the_valid_ones() -> None:
    registry: Registry[object] = Registry("widget", {"b": "x:y", "a": "x:z"})
    with pytest.raises(UnknownPluginError) as info:
        registry.get("c")
    assert info.value.message == "unknown widget 'c'"
    assert info.value.hint == "valid widgets: a, b"
    assert info.value.exit_code == EXIT_USAGE and info.value.valid == ["a", "b"]
    with pytest.raises(UnknownPluginError):
        registry.origin("c")


def test_every_plugin_kind_refuses_an_unknown_name_the_same_way(tmp_path: Path) -> None:
    cases = [
        (lambda: backend_class("tensorflw"), "backend", "onnxruntime"),
        (lambda: SUT_KINDS.get("lokal"), "SUT kind", "local"),
        (lambda: create_decoder(PostprocessSpec.model_construct(kind="softmax", outputs=("x",))),
         "output decoder", "argmax"),
        (lambda: compute_accuracy("f1", tmp_path / "log.json", GroundTruth()), "accuracy metric",
         "mAP, top1"),
        (lambda: get_builder("alexnet-onnx"), "model builder", "efficientnet-lite0-onnx"),
        (lambda: get_converter("coreml"), "model converter", "openvino-ir, tflite"),
        (lambda: read_dataset(load_catalog().dataset("imagenet").model_copy(
            update={"layout": "voc"}), tmp_path), "dataset layout", "coco, imagenet, openimages"),
    ]
    for call, kind, listed in cases:
        with pytest.raises(UnknownPluginError) as info:
            call()
        assert info.value.message.startswith(f"unknown {kind} "), info.value.message
        assert info.value.hint is not None and info.value.hint.startswith(f"valid {kind}s: ")
        assert listed in info.value.hint


# ---------------------------------------------------------------------- dataset layouts


def test_dataset_layouts_read_the_folder_of_a_card(tmp_path: Path) -> None:
    make_imagenet_folder(tmp_path / "imagenet", 4)
    imagenet = load_catalog().dataset("imagenet")
    images = read_dataset(imagenet, tmp_path / "imagenet", count=3)
    assert len(images) == 3 and images.labels is not None
    assert np.array_equal(images.labels, read_dataset(imagenet, tmp_path / "imagenet").labels[:3])
    coco = load_catalog().dataset("coco").model_copy(update={"annotations": None})
    with pytest.raises(ConfigError, match="names no annotation file"):
        read_dataset(coco, tmp_path)

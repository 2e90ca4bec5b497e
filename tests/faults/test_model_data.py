"""Bad data and misbehaving models at the CLI: malformed COCO annotations, a model whose
outputs do not match its card, a model that answers NaN, runs whose samples fail, and
compliance verdicts in test mode.

Every case runs ``mlperf-pilot run`` (or ``compliance``) in-process on tiny real ONNX
models and datasets built by tests/builders.py and asserts the exit code, the message
(cause and fix) and what is on disk afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultkit import CliResult, assert_clean_error

from builders import (
    make_class_id_classifier,
    make_coco_folder,
    make_detection_oracle,
    make_logits_classifier,
    make_nan_classifier,
    make_nan_detector,
)
from mlperf_pilot.catalog.loader import load_catalog

Cli = Callable[..., CliResult]
FAST = ("--duration-ms", "300")
ANNOTATIONS = "annotations/instances_val2017.json"


def _no_files(folder: Path) -> bool:
    """Nothing written under ``folder``: the run may have created it (to prove it is
    writable) and hold its lock file there, but no record, log or user.conf."""
    return not folder.exists() or not any(
        p.is_file() and p.suffix != ".lock" for p in folder.rglob("*"))


def _record(results: Path, model: str, scenario: str, name: str) -> dict[str, Any]:
    path = results / "onnxruntime-cpu" / model / scenario / "records" / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- COCO annotation files -----------------------------------------------------------


@pytest.fixture(scope="module")
def coco_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], Path]:
    """A good COCO folder and the demo detector's oracle for it (built once)."""
    root = tmp_path_factory.mktemp("coco")
    images = make_coco_folder(root, 3)
    catalog = load_catalog()
    fmt = catalog.model("yolov3-tiny-demo").format(None)
    oracle = make_detection_oracle(root.parent / "oracle.onnx", fmt,
                                   catalog.recipe(fmt.preprocess), root, images)
    return root, images, oracle


def _spoil_images(raw: dict, key: str, value: object) -> None:
    raw["images"][1][key] = value


def _spoil_annotation(raw: dict, key: str, value: object) -> None:
    raw["annotations"][0][key] = value


COCO_CASES = [
    # (id, change, words the cause must contain)
    ("height-text", lambda raw: _spoil_images(raw, "height", "tall"),
     ["images[1]", "height", "'tall'"]),
    ("width-negative", lambda raw: _spoil_images(raw, "width", -200),
     ["images[1]", "width", "-200"]),
    ("bbox-three-numbers", lambda raw: _spoil_annotation(raw, "bbox", [1, 2, 3]),
     ["annotations[0]", "bbox"]),
    ("bbox-text", lambda raw: _spoil_annotation(raw, "bbox", ["8", 8, 60, 60]),
     ["annotations[0]", "bbox"]),
    ("bbox-negative-size", lambda raw: _spoil_annotation(raw, "bbox", [8, 8, -60, 60]),
     ["annotations[0]", "bbox", "negative"]),
    ("bbox-nan", lambda raw: _spoil_annotation(raw, "bbox", [8, 8, float("nan"), 60]),
     ["annotations[0]", "bbox"]),
    ("bbox-missing", lambda raw: raw["annotations"][0].pop("bbox"),
     ["annotations[0]", "bbox"]),
    ("unknown-image-id", lambda raw: _spoil_annotation(raw, "image_id", 99),
     ["annotations[0]", "image_id 99", "not in 'images'"]),
    ("unknown-category-id", lambda raw: _spoil_annotation(raw, "category_id", 999),
     ["annotations[0]", "category_id 999", "not in 'categories'"]),
    ("duplicate-image-id", lambda raw: _spoil_images(raw, "id", raw["images"][0]["id"]),
     ["images[1]", "id 1", "images[0]"]),
]


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in COCO_CASES],
                         ids=[c[0] for c in COCO_CASES])
def test_malformed_coco_annotations_are_refused_before_the_run(
    cli: Cli, tmp_path: Path, coco_source: tuple[Path, list[dict], Path],
    change: Callable[[dict], object], words: list[str],
) -> None:
    oracle = coco_source[2]
    root = tmp_path / "coco"
    make_coco_folder(root, 3)
    path = root / ANNOTATIONS
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    before = path.read_bytes()
    result = cli("run", "--model", "yolov3-tiny-demo", "--model-path", oracle,
                 "--dataset-path", root, "--scenario", "Offline", "--mode", "accuracy",
                 "--results-dir", tmp_path / "res", *FAST)
    assert_clean_error(result, 2, cause=str(path), fix="annotation")
    error = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    for word in words:
        assert word in error, (word, error)
    # refused at dataset load: nothing run, nothing written, the input untouched
    assert _no_files(tmp_path / "res")
    assert path.read_bytes() == before


# --- model outputs that do not match the card ----------------------------------------


@pytest.fixture(scope="module")
def class_id_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_class_id_classifier(tmp_path_factory.mktemp("models") / "class-ids.onnx")


def test_logits_where_the_card_expects_class_ids_are_refused(
    cli: Cli, tmp_path: Path, colour_imagenet: Path,
) -> None:
    # resnet50's ONNX format answers ArgMax:0 (class ids); this file's ArgMax:0 holds
    # 1000 float logits (an export that only matched the names)
    model = make_logits_classifier(tmp_path / "named-like-resnet50.onnx",
                                   output_name="ArgMax:0")
    result = cli("run", "--model", "resnet50", "--model-path", model,
                 "--dataset-path", colour_imagenet, "--scenario", "Offline",
                 "--results-dir", tmp_path / "res", *FAST)
    assert_clean_error(result, 2, cause="float32", fix="argmax")
    error = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    assert "(1, 1000)" in error and "class-index" in error and "class id" in error
    assert "--model-format pytorch" not in result.err  # an ONNX file: not a format fix
    assert _no_files(tmp_path / "res")  # refused at the warm-up, before any LoadGen run


def test_class_ids_where_the_card_expects_scores_are_refused(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, class_id_model: Path,
) -> None:
    # the demo card decodes scores with argmax; this file already answers int64 class ids
    result = cli("run", "--model", "efficientnet-lite0-demo", "--model-path", class_id_model,
                 "--dataset-path", colour_imagenet, "--scenario", "Offline",
                 "--results-dir", tmp_path / "res", *FAST)
    assert_clean_error(result, 2, cause="int64", fix="class-index")
    error = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    assert "argmax" in error and "one value per sample" in error
    assert _no_files(tmp_path / "res")


# --- a model that answers NaN --------------------------------------------------------


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nan_classifier(tmp_path_factory.mktemp("models") / "nan.onnx")


def test_nan_answers_are_failures_never_answers(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, nan_model: Path,
) -> None:
    # every third photo of the 24 is blue: those 8 samples answer NaN logits
    result = cli("run", "--model", "efficientnet-lite0-demo", "--model-path", nan_model,
                 "--dataset-path", colour_imagenet, "--scenario", "Offline", "--mode",
                 "accuracy", "--set", "sut.on_error=continue", "--results-dir",
                 tmp_path / "res", *FAST)
    assert result.code == 1, result.text[-3000:]
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert "8 sample(s) answered NaN" in result.out
    record = _record(tmp_path / "res", "efficientnet-lite0-demo", "Offline", "accuracy")
    assert record["status"] == "INVALID"
    assert record["samples_failed"] == 8
    assert "8 sample(s) answered NaN" in record["reasons"]
    assert record["accuracy"]["text"] == "accuracy=66.667%, good=16, total=24"
    assert record["accuracy"]["empty"] == 8
    log = Path(record["log_dir"]) / "mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    assert len(entries) == 24 and sum(1 for e in entries if e["data"] == "") == 8


def test_nan_answers_with_on_error_stop_end_the_run_invalid(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, nan_model: Path,
) -> None:
    result = cli("run", "--model", "efficientnet-lite0-demo", "--model-path", nan_model,
                 "--dataset-path", colour_imagenet, "--scenario", "Offline",
                 "--results-dir", tmp_path / "res", *FAST)
    assert result.code == 1, result.text[-3000:]
    assert "answered NaN" in result.out
    for mode in ("accuracy", "performance"):
        record = _record(tmp_path / "res", "efficientnet-lite0-demo", "Offline", mode)
        assert record["status"] == "INVALID"
        assert any(re.fullmatch(r"\d+ sample\(s\) answered NaN", r) for r in record["reasons"])
        assert record["samples_failed"] > 0


def test_a_detector_answering_nan_boxes_is_invalid(cli: Cli, tmp_path: Path,
                                                   coco_source: tuple[Path, list[dict], Path]
                                                   ) -> None:
    source, _, _ = coco_source
    catalog = load_catalog()
    fmt = catalog.model("yolov3-tiny-demo").format(None)
    model = make_nan_detector(tmp_path / "nan-detector.onnx", fmt,
                              catalog.recipe(fmt.preprocess))
    result = cli("run", "--model", "yolov3-tiny-demo", "--model-path", model,
                 "--dataset-path", source, "--scenario", "Offline", "--mode", "accuracy",
                 "--set", "sut.on_error=continue", "--results-dir", tmp_path / "res", *FAST)
    assert result.code == 1, result.text[-3000:]
    record = _record(tmp_path / "res", "yolov3-tiny-demo", "Offline", "accuracy")
    assert record["status"] == "INVALID"
    assert "3 sample(s) answered NaN" in record["reasons"]
    assert record["accuracy"]["empty"] == 3


# --- no rerun from a run whose samples failed -----------------------------------------


def test_a_run_with_failed_samples_is_not_rerun(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, failing_model: Path,
) -> None:
    # the blue photos fail in onnxruntime; with on_error=stop the rest end at once, and
    # the "rate" of those empty answers must never become the next target
    result = cli("run", "--model", "efficientnet-lite0-demo", "--model-path", failing_model,
                 "--dataset-path", colour_imagenet, "--scenario", "Offline", "--mode",
                 "performance", "--set", "max_reruns=2", "--results-dir", tmp_path / "res",
                 *FAST)
    assert result.code == 1, result.text[-3000:]
    assert "rerun 1" not in result.err
    note = next(ln for ln in result.err.splitlines() if "not rerun" in ln)
    assert "sample(s) failed" in note
    scenario = tmp_path / "res" / "onnxruntime-cpu" / "efficientnet-lite0-demo" / "Offline"
    assert not (scenario / ".attempts").exists()
    record = _record(tmp_path / "res", "efficientnet-lite0-demo", "Offline", "performance")
    assert record["status"] == "INVALID" and record["samples_failed"] > 0
    assert any("sample(s) failed" in r for r in record["reasons"])


# --- compliance performance bands in test mode ----------------------------------------


def _inflate_reference(scenario: Path, factor: float) -> float:
    """Make the performance run's recorded score ``factor`` times what it was, so the
    compliance run is far outside any band (noise-free and deterministic)."""
    detail = scenario / "performance" / "run_1" / "mlperf_log_detail.txt"
    text = detail.read_text()
    pattern = r'("key": "result_samples_per_second", "value": )([0-9.e+]+)'
    value = float(re.search(pattern, text).group(2))  # type: ignore[union-attr]
    detail.write_text(re.sub(pattern, lambda m: f"{m.group(1)}{value * factor}", text))
    return value


@pytest.mark.parametrize(("mode", "code", "status"), [
    ("test", 0, "INDICATIVE"),
    ("valid", 1, "FAIL"),
])
def test_compliance_band_in_test_mode_is_indicative_and_official_in_valid_mode(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, logits_model: Path, mode: str,
    code: int, status: str,
) -> None:
    common = ("--model", "efficientnet-lite0-demo", "--model-path", logits_model,
              "--dataset-path", colour_imagenet, "--scenario", "Offline",
              "--results-dir", tmp_path / "res", *FAST)
    first = cli("run", *common, "--mode", "both")
    assert first.code == 0, first.text[-3000:]
    scenario = tmp_path / "res" / "onnxruntime-cpu" / "efficientnet-lite0-demo" / "Offline"
    _inflate_reference(scenario, 10.0)
    result = cli("compliance", "TEST01", *common, "--execution-mode", mode,
                 "--set", "loadgen.min_query_count=1")
    assert result.code == code, result.text[-3000:]
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert status in result.out
    record = json.loads((scenario / "records" / "TEST01.json").read_text())
    assert record["status"] == status
    reasons = " ".join(record["reasons"])
    assert "TEST01 performance" in reasons
    assert re.search(r"\(-(8\d|9\d)\.\d%\)", reasons), reasons  # about -90 %
    if mode == "test":
        assert "indicative (test mode)" in reasons
        assert "--execution-mode valid" in reasons
    else:
        assert "indicative" not in reasons
    # the official verification file keeps the official verdict either way; the
    # deterministic accuracy check still passed
    assert (scenario / "TEST01" / "verify_performance.txt").read_text().endswith(
        "TEST FAIL\n")
    assert (scenario / "TEST01" / "verify_accuracy.txt").read_text().endswith("TEST PASS\n")


def test_a_compliance_logic_failure_stays_fail_in_test_mode(
    cli: Cli, tmp_path: Path, colour_imagenet: Path, logits_model: Path,
) -> None:
    common = ("--model", "efficientnet-lite0-demo", "--model-path", logits_model,
              "--dataset-path", colour_imagenet, "--scenario", "Offline",
              "--results-dir", tmp_path / "res", *FAST)
    assert cli("run", *common, "--mode", "both").code == 0
    scenario = tmp_path / "res" / "onnxruntime-cpu" / "efficientnet-lite0-demo" / "Offline"
    # the accuracy run's answers no longer match what the model answers: a logic error
    log = scenario / "accuracy" / "mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    for entry in entries:
        entry["data"] = "00007A44"  # float32 1000.0: a class the model never answers
    log.write_text(json.dumps(entries))
    result = cli("compliance", "TEST01", *common)
    assert result.code == 1, result.text[-3000:]
    record = json.loads((scenario / "records" / "TEST01.json").read_text())
    assert record["status"] == "FAIL"
    assert any(r.startswith("TEST01 accuracy") for r in record["reasons"])

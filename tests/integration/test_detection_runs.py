"""The detection path end to end through the real LoadGen: COCO-format folders, the
per-model preprocessing, real onnxruntime "oracle" models that answer with the ground
truth (or with shifted boxes), the decoders, and pycocotools mAP in accuracy.txt."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_coco_folder, make_detection_oracle
from mlperf_pilot.catalog.loader import load_catalog
from mlperf_pilot.cli.main import main
from mlperf_pilot.engine import resolve_spec, run_benchmark

CATALOG = load_catalog()


def _oracle(tmp_path: Path, model: str, root: Path, images: list[dict], *,
            image_dir: str = "val2017", shift_px: int = 0) -> Path:
    card = CATALOG.model(model)
    fmt = card.format(None)
    recipe = CATALOG.recipe(fmt.preprocess)
    return make_detection_oracle(tmp_path / f"{model}-{shift_px}.onnx", fmt, recipe, root,
                                 images, image_dir=image_dir, shift_px=shift_px)


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("coco")
    return root, make_coco_folder(root, 6)


def _accuracy(model: str, model_path: Path, dataset: Path, results: Path,
              scenarios: tuple[str, ...] = ("Offline",), modes: tuple[str, ...] = ("accuracy",),
              count: int | None = None):
    spec = resolve_spec([{"model": model, "model_path": model_path, "dataset_path": dataset,
                          "scenarios": list(scenarios), "modes": list(modes),
                          "results_dir": results, "test_duration_ms": 300,
                          "preprocess_workers": 1, "count": count}])
    return run_benchmark(spec)


def test_demo_detector_card_with_oracle_scores_100_then_shifted_30(
    coco_folder: tuple[Path, list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    root, images = coco_folder
    oracle = _oracle(tmp_path, "yolov3-tiny-demo", root, images)
    code = main(["run", "--model", "yolov3-tiny-demo", "--model-path", str(oracle),
                 "--dataset-path", str(root), "--scenario", "Offline", "--mode", "both",
                 "--results-dir", str(tmp_path / "res"), "--duration-ms", "300"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "100.000% mAP" in out
    log_dir = tmp_path / "res" / "onnxruntime-cpu" / "yolov3-tiny-demo" / "Offline"
    text = (log_dir / "accuracy" / "accuracy.txt").read_text()
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in text
    assert text.endswith("mAP=100.000%\n")
    assert "VALID" in out and "Samples/s" in out
    assert (log_dir / "performance" / "run_1" / "mlperf_log_summary.txt").is_file()

    shifted = _oracle(tmp_path, "yolov3-tiny-demo", root, images, shift_px=14)
    summary = _accuracy("yolov3-tiny-demo", shifted, root, tmp_path / "shifted")
    (record,) = summary.records
    assert record.accuracy is not None and record.accuracy.metric == "mAP"
    assert record.accuracy.text.rstrip().endswith("mAP=30.000%")
    assert record.accuracy.value == pytest.approx(30.0)


def test_ssd_mobilenet_tf_outputs_on_uint8_nhwc(
    coco_folder: tuple[Path, list[dict]], tmp_path: Path,
) -> None:
    root, images = coco_folder
    oracle = _oracle(tmp_path, "ssd-mobilenet", root, images)
    summary = _accuracy("ssd-mobilenet", oracle, root, tmp_path / "res",
                        scenarios=("SingleStream",), modes=("accuracy", "performance"))
    assert summary.ok, [(r.mode, r.reasons) for r in summary.records]
    accuracy = next(r for r in summary.records if r.mode == "accuracy")
    assert accuracy.accuracy.value == pytest.approx(100.0)


def test_yolo_letterboxed_head_on_a_coco_safe_folder(tmp_path: Path) -> None:
    root = tmp_path / "coco-safe"
    images = make_coco_folder(root, 5, image_dir="val2017_safe")
    oracle = _oracle(tmp_path, "yolo", root, images, image_dir="val2017_safe")
    (record,) = _accuracy("yolo", oracle, root, tmp_path / "res").records
    assert record.status == "VALID", record.reasons
    assert record.accuracy.value == pytest.approx(100.0)


def test_ssd_resnet34_labels_go_through_the_inverse_map(
    coco_folder: tuple[Path, list[dict]], tmp_path: Path,
) -> None:
    root, images = coco_folder
    oracle = _oracle(tmp_path, "ssd-resnet34", root, images[:3])
    (record,) = _accuracy("ssd-resnet34", oracle, root, tmp_path / "res", count=3).records
    assert record.status == "VALID", record.reasons
    assert record.accuracy.value == pytest.approx(100.0)


def test_retinanet_on_the_openimages_layout(tmp_path: Path) -> None:
    root = tmp_path / "openimages"
    images = make_coco_folder(root, 4, annotations="annotations/openimages-mlperf.json",
                              image_dir="validation/data", category_ids=list(range(0, 264, 7)))
    oracle = _oracle(tmp_path, "retinanet", root, images, image_dir="validation/data")
    summary = _accuracy("retinanet", oracle, root, tmp_path / "res")
    (record,) = summary.records
    assert record.status == "VALID", record.reasons
    assert record.accuracy.value == pytest.approx(100.0)


def test_missing_image_stops_the_run_with_the_file_named(
    coco_folder: tuple[Path, list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source, images = coco_folder
    root = tmp_path / "broken"
    make_coco_folder(root, 3)
    (root / "val2017" / images[2]["file_name"]).unlink()
    oracle = _oracle(tmp_path, "yolov3-tiny-demo", source, images)
    code = main(["run", "--model", "yolov3-tiny-demo", "--model-path", str(oracle),
                 "--dataset-path", str(root), "--scenario", "Offline", "--mode", "accuracy",
                 "--results-dir", str(tmp_path / "res")])
    _, err = capsys.readouterr()
    assert code == 2  # the data set given is malformed: bad input, a usage error
    assert "Traceback" not in err
    assert images[2]["file_name"] in err and "does not exist" in err


@pytest.mark.skipif(not os.environ.get("MLPERF_INFERENCE_SRC"),
                    reason="set MLPERF_INFERENCE_SRC to a mlcommons/inference checkout")
def test_map_equals_the_reference_accuracy_coco_script(
    coco_folder: tuple[Path, list[dict]], tmp_path: Path,
) -> None:
    root, images = coco_folder
    oracle = _oracle(tmp_path, "yolov3-tiny-demo", root, images, shift_px=5)
    (record,) = _accuracy("yolov3-tiny-demo", oracle, root, tmp_path / "res").records
    script = (Path(os.environ["MLPERF_INFERENCE_SRC"]) / "vision" /
              "classification_and_detection" / "tools" / "accuracy-coco.py")
    log = Path(record.log_dir) / "mlperf_log_accuracy.json"
    reference = subprocess.run(
        [sys.executable, str(script), "--mlperf-accuracy-file", str(log), "--coco-dir",
         str(root), "--output-file", str(tmp_path / "ref.json")],
        capture_output=True, text=True, check=True).stdout
    (line,) = re.findall(r"^mAP=.*$", reference, re.MULTILINE)
    assert record.accuracy.text.splitlines()[-1] == line

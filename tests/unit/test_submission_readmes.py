"""The command a result's README gives: this machine's paths become placeholders, every
other word stays as it was given."""

from __future__ import annotations

import pytest

from mlperf_pilot.submission.readmes import portable_command


@pytest.mark.parametrize(("command", "layout", "expected"), [
    ("mlperf-pilot run --model resnet50 --model-path /tmp/a/r.onnx --dataset-path "
     "data/imagenet --scenario Offline", "imagenet",
     "mlperf-pilot run --model resnet50 --model-path <MODEL_FILE> --dataset-path "
     "<IMAGENET_DIR> --scenario Offline"),
    ("mlperf-pilot run --model retinanet --dataset-path=/data/oi --results-dir results "
     "--targets-file /home/u/t.yaml", "openimages",
     "mlperf-pilot run --model retinanet --dataset-path=<OPENIMAGES_DIR> --results-dir "
     "results --targets-file <TARGETS_FILE>"),
    ("/opt/venv/bin/mlperf-pilot run --set sut.model_path=m.onnx --set cache_dir=/c "
     "--set count=5 --system-name 'my box'", "coco",
     "mlperf-pilot run --set sut.model_path=<MODEL_FILE> --set cache_dir=<PATH> "
     "--set count=5 --system-name 'my box'"),
    ("mlperf-pilot run --config ~/my.yaml --results-dir /srv/results", "imagenet",
     "mlperf-pilot run --config <CONFIG_FILE> --results-dir <RESULTS_DIR>"),
    ("mlperf-pilot run --model-path '/tmp/unbalanced", "imagenet",
     "mlperf-pilot run --model-path '<PATH>"),
])
def test_portable_command(command: str, layout: str, expected: str) -> None:
    assert portable_command(command, layout) == expected

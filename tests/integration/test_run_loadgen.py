"""Real LoadGen runs through the whole chain: dataset → preprocessing → backend → SUT
→ LoadGen → logs → accuracy → records, with a null backend and tiny real ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import make_imagenet_folder
from mlperf_pilot.config import ALL_SCENARIOS
from mlperf_pilot.datasets.prepared import usable_cores
from mlperf_pilot.engine import resolve_spec, run_benchmark
from mlperf_pilot.errors import DeviceUnavailableError
from mlperf_pilot.results.records import read_record


def _spec(**overrides: object):
    base = {"test_duration_ms": 300, "preprocess_workers": 1}
    base.update(overrides)
    return resolve_spec([base])


def test_null_backend_runs_all_four_scenarios_valid(colour_imagenet: Path,
                                                    tmp_path: Path) -> None:
    spec = _spec(model="resnet50", backend="null", dataset_path=colour_imagenet,
                 scenarios=["SingleStream", "MultiStream", "Offline"], modes=["performance"],
                 results_dir=tmp_path)
    records = run_benchmark(spec).records
    # Server at a rate this shared 2-core machine sustains with margin (its tail latency
    # is noisy near the test-mode estimate, see benchmarks/README.md), for 2,000 queries:
    # enough for early stopping to pass with the few late queries a busy machine makes
    server = _spec(model="resnet50", backend="null", dataset_path=colour_imagenet,
                   scenarios=["Server"], modes=["performance"], results_dir=tmp_path,
                   test_duration_ms=4000,
                   loadgen={"target_qps": 500})
    records += run_benchmark(server).records
    assert sorted(r.scenario for r in records) == sorted(s.value for s in ALL_SCENARIOS)
    for record in records:
        assert record.status == "VALID", (record.scenario, record.reasons)
        assert record.metric_value and record.metric_value > 0
        assert record.samples_failed == 0
        log_dir = Path(record.log_dir)
        assert (log_dir / "mlperf_log_summary.txt").is_file()
        assert (log_dir / "mlperf_log_detail.txt").is_file()
        expected = tmp_path / "null-cpu" / "resnet50" / record.scenario / "performance"
        assert log_dir == expected / "run_1"
    units = {r.scenario: r.metric_unit for r in records}
    assert units["SingleStream"] == "ms" and units["MultiStream"] == "ms"
    # the SUT layout each scenario ran with: one worker on every core, except Server
    cores = usable_cores()
    for scenario, layout in (("Offline", (1, cores)), ("SingleStream", (1, cores)),
                             ("Server", (cores, 1))):
        saved = json.loads((tmp_path / "null-cpu" / "resnet50" / scenario / "run_spec.json")
                           .read_text())
        assert (saved["resolved"]["workers"], saved["resolved"]["threads"]) == layout
        assert (saved["spec"]["sut"]["workers"], saved["spec"]["sut"]["threads"]) == (0, 0)


def test_resnet50_shaped_model_accuracy_and_performance(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path
) -> None:
    spec = _spec(model="resnet50", model_path=resnet50_model, dataset_path=colour_imagenet,
                 scenarios=["Offline", "SingleStream"], results_dir=tmp_path,
                 system_name="ci-box")
    summary = run_benchmark(spec)
    assert summary.ok, [(r.scenario, r.mode, r.reasons) for r in summary.records]
    accuracy = [r for r in summary.records if r.mode == "accuracy"]
    assert {r.scenario for r in accuracy} == {"Offline", "SingleStream"}
    for record in accuracy:
        assert record.accuracy is not None
        assert record.accuracy.text == "accuracy=100.000%, good=24, total=24"
        txt = Path(record.log_dir) / "accuracy.txt"
        assert txt.read_text() == "accuracy=100.000%, good=24, total=24\n"
    scenario_dir = tmp_path / "ci-box" / "resnet50" / "Offline"
    for name in ("user.conf", "run_spec.json", "versions.json", "records/accuracy.json",
                 "records/performance.json", "accuracy/mlperf_log_accuracy.json",
                 "performance/run_1/mlperf_log_detail.txt"):
        assert (scenario_dir / name).is_file(), name
    user_conf = (scenario_dir / "user.conf").read_text()
    assert "resnet50.Offline.min_duration = 300" in user_conf
    # what ran the model, as the parent's probe saw it while loaded
    resolved = json.loads((scenario_dir / "run_spec.json").read_text())["resolved"]
    assert resolved["device_in_use"] == "CPUExecutionProvider"
    assert "resnet50.Offline.performance_sample_count_override = 24" in user_conf
    versions = json.loads((scenario_dir / "versions.json").read_text())
    assert "mlcommons-loadgen" in versions["packages"] and "onnxruntime" in versions["packages"]
    spec_saved = json.loads((scenario_dir / "run_spec.json").read_text())
    assert spec_saved["spec"]["model"] == "resnet50"
    assert spec_saved["resolved"]["model_path"] == str(resnet50_model)
    record = read_record(scenario_dir / "records" / "performance.json")
    assert record.status == "VALID"
    assert record.reference_line and record.reference_line.startswith("TestScenario.Offline qps=")


def test_wrong_labels_give_the_exact_accuracy(tmp_path: Path, logits_model: Path) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 12, wrong_labels=3)
    spec = _spec(model="efficientnet-lite0-demo", model_path=logits_model, dataset_path=data,
                 scenarios=["Offline"], modes=["accuracy"], results_dir=tmp_path / "r")
    record = run_benchmark(spec).records[0]
    assert record.accuracy is not None
    assert record.accuracy.text == "accuracy=75.000%, good=9, total=12"


def test_an_inference_that_raises_makes_the_run_invalid_with_the_reason(
    tmp_path: Path, failing_model: Path
) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 9)  # every third photo is blue: those fail in onnxruntime
    spec = _spec(model="efficientnet-lite0-demo", model_path=failing_model, dataset_path=data,
                 scenarios=["Offline"], results_dir=tmp_path / "r",
                 sut={"max_batch_size": 1, "on_error": "continue"})
    summary = run_benchmark(spec)
    assert not summary.ok
    accuracy, performance = summary.records
    assert accuracy.status == "INVALID" and performance.status == "INVALID"
    assert accuracy.samples_failed == 3
    assert any("3 sample(s) failed" in r and "Gather" in r for r in accuracy.reasons)
    assert accuracy.accuracy is not None and accuracy.accuracy.empty == 3
    # the failed samples were answered with no data, never a made-up class
    entries = json.loads((Path(accuracy.log_dir) / "mlperf_log_accuracy.json").read_text())
    assert sum(1 for e in entries if e["data"] == "") == 3
    assert performance.samples_failed > 0


def test_on_error_stop_ends_the_run_without_running_later_samples(
    tmp_path: Path, failing_model: Path
) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 9)
    spec = _spec(model="efficientnet-lite0-demo", model_path=failing_model, dataset_path=data,
                 scenarios=["Offline"], modes=["accuracy"], results_dir=tmp_path / "r",
                 sut={"max_batch_size": 1})
    record = run_benchmark(spec).records[0]
    assert record.status == "INVALID"
    assert record.samples_failed >= 3
    assert any("on_error=stop" in k for k in record.errors)


def test_cuda_requested_without_cuda_is_refused(colour_imagenet: Path, logits_model: Path,
                                                tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    spec = _spec(model="efficientnet-lite0-demo", model_path=logits_model,
                 dataset_path=colour_imagenet, device="cuda", results_dir=tmp_path)
    with pytest.raises(DeviceUnavailableError) as info:
        run_benchmark(spec)
    assert "cuda" in info.value.message.lower() and "onnxruntime-gpu" in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_test_mode_user_conf_uses_the_warmup_estimates(colour_imagenet: Path,
                                                       logits_model: Path, tmp_path: Path) -> None:
    spec = _spec(model="efficientnet-lite0-demo", model_path=logits_model,
                 dataset_path=colour_imagenet, scenarios=["SingleStream", "Server"],
                 modes=["performance"], results_dir=tmp_path)
    summary = run_benchmark(spec)
    root = tmp_path / "onnxruntime-cpu" / "efficientnet-lite0-demo"
    single = (root / "SingleStream" / "user.conf").read_text()
    server = (root / "Server" / "user.conf").read_text()
    assert "resnet50.SingleStream.target_latency = " in single
    assert "resnet50.Server.target_qps = " in server
    assert "resnet50.Server.min_query_count = 662" in server
    single_record = next(r for r in summary.records if r.scenario == "SingleStream")
    assert single_record.status == "VALID", single_record.reasons
    server_record = next(r for r in summary.records if r.scenario == "Server")
    assert server_record.metric_unit == "Samples/s" and server_record.metric_value


def test_explicit_targets_reach_user_conf(colour_imagenet: Path, logits_model: Path,
                                          tmp_path: Path) -> None:
    spec = _spec(model="efficientnet-lite0-demo", model_path=logits_model,
                 dataset_path=colour_imagenet, scenarios=["Offline"], modes=["performance"],
                 results_dir=tmp_path, loadgen={"target_qps": 123.5, "min_duration_ms": 250})
    run_benchmark(spec)
    conf = (tmp_path / "onnxruntime-cpu/efficientnet-lite0-demo/Offline/user.conf").read_text()
    assert "resnet50.Offline.target_qps = 123.5" in conf
    assert "resnet50.Offline.min_duration = 250" in conf
    detail = (tmp_path / "onnxruntime-cpu/efficientnet-lite0-demo/Offline/performance/run_1/"
              "mlperf_log_detail.txt").read_text()
    assert '"key": "effective_target_qps", "value": 123.5' in detail

"""The one log parser, on the real MLPerf logs in ../shared/data and on logs of every
scenario made by real LoadGen runs in this test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders import SHARED_DATA
from mlperf_pilot.errors import LoadGenError
from mlperf_pilot.loadgen.logs import parse_detail, parse_summary, read_result
from mlperf_pilot.runner import resolve_spec, run_benchmark

RESULTS = SHARED_DATA / "open" / "MLCommons" / "results"
ORT_RESNET = (RESULTS / "gh_ubuntu-latest_x86-reference-cpu-onnxruntime_v1.21.1-default_config"
              / "resnet50" / "offline")

needs_shared = pytest.mark.skipif(not RESULTS.is_dir(), reason="../shared/data is not here")


@needs_shared
def test_every_performance_run_in_the_shared_tree_parses() -> None:
    runs = sorted(RESULTS.glob("*/*/*/performance/run_1"))
    assert len(runs) >= 30
    for run in runs:
        result = read_result(run)
        assert result.scenario == "Offline" and result.mode == "PerformanceOnly"
        assert result.valid is not None
        assert result.metric_unit == "Samples/s" and result.metric_value is not None


@needs_shared
def test_every_accuracy_run_in_the_shared_tree_parses() -> None:
    runs = sorted(RESULTS.glob("*/*/*/accuracy"))
    assert len(runs) >= 30
    for run in runs:
        result = read_result(run)
        assert result.mode == "AccuracyOnly" and result.valid is None
        assert result.metric_value is None


@needs_shared
def test_known_values_of_a_real_resnet50_offline_run() -> None:
    result = read_result(ORT_RESNET / "performance" / "run_1")
    summary = parse_summary((ORT_RESNET / "performance/run_1/mlperf_log_summary.txt").read_text())
    assert summary["Samples per second"] == "23.0274"
    assert result.metric_value == pytest.approx(23.0274)
    assert result.valid is True and result.result_validity == "VALID"
    assert result.loadgen_version.startswith("5.0.16")
    assert result.effective["performance_sample_count"] == 1024
    assert result.effective["samples_per_query"] == 500
    assert result.qsl_reported_total_count == 500
    assert result.num_errors == 0 and result.error_messages == []
    assert result.latency_percentiles_ns["99.00"] == pytest.approx(21713223073)
    assert result.audit_config_found is False
    accuracy = read_result(ORT_RESNET / "accuracy")
    assert accuracy.qsl_reported_total_count == 500


@needs_shared
def test_summary_and_detail_disagreeing_is_an_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ORT_RESNET / "performance" / "run_1", run)
    summary = run / "mlperf_log_summary.txt"
    summary.write_text(summary.read_text().replace("Result is : VALID", "Result is : INVALID"))
    with pytest.raises(LoadGenError, match="says INVALID"):
        read_result(run)


def test_missing_and_truncated_detail_logs(tmp_path: Path) -> None:
    with pytest.raises(LoadGenError) as info:
        read_result(tmp_path)
    assert str(tmp_path / "mlperf_log_detail.txt") in info.value.message
    broken = tmp_path / "mlperf_log_detail.txt"
    broken.write_text(':::MLLOG {"key": "a", "value": 1}\n:::MLLOG {"key": "b", "val')
    with pytest.raises(LoadGenError, match=r"mlperf_log_detail\.txt:2"):
        parse_detail(broken)


@given(st.text())
def test_parse_summary_never_raises(text: str) -> None:
    assert isinstance(parse_summary(text), dict)


@given(st.from_regex(r"[A-Za-z][A-Za-z ()]{0,20}[A-Za-z)]", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9.]{1,12}", fullmatch=True))
def test_parse_summary_reads_key_value_lines(key: str, value: str) -> None:
    assert parse_summary(f"====\n{key} : {value}\n")[key] == value


# --------------------------------------------------------------- logs made by real runs


@pytest.fixture(scope="module")
def scenario_logs(tmp_path_factory: pytest.TempPathFactory, colour_imagenet: Path) -> Path:
    out = tmp_path_factory.mktemp("logs")
    base = {"model": "resnet50", "backend": "null", "dataset_path": colour_imagenet,
            "modes": "both", "results_dir": out, "test_duration_ms": 300,
            "preprocess_workers": 1}
    records = run_benchmark(resolve_spec([
        {**base, "scenarios": ["SingleStream", "MultiStream", "Offline"]}])).records
    # Server at a rate this 2-core machine sustains with margin
    records += run_benchmark(resolve_spec([
        {**base, "scenarios": ["Server"], "loadgen": {"target_qps": 500}}])).records
    assert len(records) == 8
    return out / "null-cpu" / "resnet50"


@pytest.mark.parametrize(
    ("scenario", "unit", "summary_key", "detail_key"),
    [
        ("Offline", "Samples/s", "Samples per second", "result_samples_per_second"),
        ("Server", "Samples/s", "Completed samples per second",
         "result_completed_samples_per_sec"),
        ("SingleStream", "ms", "90.0th percentile latency (ns)",
         "result_90.00_percentile_latency_ns"),
        ("MultiStream", "ms", "99.0th percentile latency (ns)",
         "result_99.00_percentile_per_query_latency_ns"),
    ],
)
def test_metric_per_scenario_matches_the_summary(
    scenario_logs: Path, scenario: str, unit: str, summary_key: str, detail_key: str
) -> None:
    run = scenario_logs / scenario / "performance" / "run_1"
    result = read_result(run)
    assert result.scenario == scenario and result.valid is True
    assert result.metric_unit == unit and result.metric_value and result.metric_value > 0
    summary = parse_summary((run / "mlperf_log_summary.txt").read_text())
    detail = parse_detail(run / "mlperf_log_detail.txt")
    assert float(summary[summary_key]) == pytest.approx(float(detail.get(detail_key)), rel=1e-4)
    if scenario == "SingleStream":
        assert result.metric_value == pytest.approx(detail.get("early_stopping_latency_ss") / 1e6)
        assert result.early_stopping_met is True
    if scenario == "MultiStream":
        assert result.metric_value == pytest.approx(detail.get("early_stopping_latency_ms") / 1e6)
    if scenario == "Server":
        assert result.performance_constraints_met is True
    assert "Multiple conf files" not in " ".join(result.error_messages)


def test_accuracy_mode_logs(scenario_logs: Path) -> None:
    result = read_result(scenario_logs / "Offline" / "accuracy")
    assert result.mode == "AccuracyOnly" and result.valid is None and result.metric_value is None
    assert result.qsl_reported_total_count == 24

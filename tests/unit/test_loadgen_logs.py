"""The one LoadGen log parser, on two kinds of real logs.

* The real MLPerf submission tree in ../shared/data (LoadGen 5.0.x-6.0.x, all Offline).
* Logs written during this test session by real LoadGen runs of every scenario, with a
  trivial SUT that answers each sample at once. Each run happens in a fresh Python
  process: LoadGen counts ``TestSettings.FromConfig`` calls per process and logs an
  error from the second one on, and a test run must not leave that state behind in the
  pytest process.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlperf_pilot.errors import LoadGenError
from mlperf_pilot.loadgen.logs import (
    ACCURACY_FILE,
    DETAIL_FILE,
    SUMMARY_FILE,
    parse_detail,
    parse_detail_text,
    parse_summary,
    read_result,
    result_from_detail,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlc-test-submission-v5.0"
RESULTS = SHARED / "open" / "MLCommons" / "results"
ORT_RESNET = (
    RESULTS / "gh_ubuntu-latest_x86-reference-cpu-onnxruntime_v1.21.1-default_config"
    / "resnet50" / "offline"
)
ORT_RUN = ORT_RESNET / "performance" / "run_1"

needs_shared = pytest.mark.skipif(not RESULTS.is_dir(), reason=f"{SHARED} is not here")


def summary_of(folder: Path) -> dict[str, str]:
    return parse_summary((folder / SUMMARY_FILE).read_text())


# ------------------------------------------------------------------ the shared MLPerf tree


@needs_shared
def test_every_performance_run_in_the_shared_tree_parses() -> None:
    runs = sorted(RESULTS.glob("*/*/*/performance/run_1"))
    assert len(runs) >= 30
    for run in runs:
        result = read_result(run)
        summary = summary_of(run)
        assert (result.scenario, result.mode) == ("Offline", "PerformanceOnly"), run
        assert result.valid is True and summary["Result is"] == "VALID", run
        assert (result.metric_name, result.metric_unit) == ("samples per second", "Samples/s")
        assert result.metric_value == pytest.approx(float(summary["Samples per second"]),
                                                    rel=1e-6), run
        assert result.metric_value == result.samples_per_second
        assert result.num_errors == 0 and result.error_messages == [], run
        assert result.audit_config_found is False
        assert result.qsl_reported_total_count and result.qsl_reported_total_count > 0


@needs_shared
def test_every_accuracy_run_in_the_shared_tree_parses() -> None:
    runs = sorted(RESULTS.glob("*/*/*/accuracy"))
    assert len(runs) >= 30
    for run in runs:
        result = read_result(run)
        assert result.mode == "AccuracyOnly" and result.scenario == "Offline", run
        assert result.valid is None and result.result_validity is None, run
        assert result.metric_value is None and result.metric_name is None, run
        # LoadGen's accuracy-mode summary holds only the warning and error counts
        assert "Result is" not in summary_of(run)
        assert (run / ACCURACY_FILE).is_file()


@needs_shared
def test_known_values_of_a_real_resnet50_offline_run() -> None:
    result = read_result(ORT_RUN)
    summary = summary_of(ORT_RUN)
    assert summary["Samples per second"] == "23.0274"
    assert summary["SUT name"] == "PySUT" and summary["Mode"] == "PerformanceOnly"
    assert summary["target_latency (ns)"] == "0" and summary["samples_per_query"] == "500"
    assert summary["Early stopping satisfied"] == "Yes"
    assert result.metric_value == pytest.approx(23.0274, abs=5e-5)
    assert (result.scenario, result.mode) == ("Offline", "PerformanceOnly")
    assert result.valid is True and result.result_validity == "VALID"
    assert result.min_duration_met is True and result.min_queries_met is True
    assert result.performance_constraints_met is None and result.invalid_reason is None
    assert result.loadgen_version is not None and result.loadgen_version.startswith("5.0.16")
    assert result.sut_name == "PySUT" and result.test_datetime == "2025-05-08T04:55:35Z"
    assert result.effective_settings["performance_sample_count"] == 1024
    assert result.effective_settings["samples_per_query"] == 500
    assert result.effective_settings["min_query_count"] == 1  # LoadGen forces 1 for Offline
    assert result.requested_settings["min_query_count"] == 500
    # seeds above 2**63 survive exactly
    assert result.effective_settings["sample_index_rng_seed"] == 15036839855038426416
    assert result.qsl_reported_total_count == result.qsl_reported_performance_count == 500
    assert result.generated_query_count == 1 and result.generated_samples_per_query == 500
    assert result.query_count == 1
    assert result.min_latency_ns == 5256983931 == int(summary["Min latency (ns)"])
    assert result.max_latency_ns == 21713223073
    assert result.mean_latency_ns == 13565856060
    assert result.latency_percentiles_ns["50.00"] == 11583409545
    assert result.latency_percentiles_ns["99.90"] == 21713223073
    assert set(result.latency_percentiles_ns) == {"50.00", "90.00", "95.00", "97.00", "99.00",
                                                  "99.90"}
    assert result.duration_ms == pytest.approx(21713, abs=1)  # power_begin -> power_end
    assert result.num_errors == 0 and result.warning_messages == []


@needs_shared
def test_detail_log_entries_keep_order_and_get_returns_the_last() -> None:
    log = parse_detail(ORT_RUN / DETAIL_FILE)
    assert log.entries[0].key == "loadgen_version"
    assert log.entries[-1].key == "num_errors"
    assert log.values("generic_message") == [
        "Starting performance mode",
        "Ending naturally: Minimum query count and test duration met.",
    ]
    assert log.get("generic_message") == log.values("generic_message")[-1]
    assert log.has("result_validity") and not log.has("result_perf_constraints_met")
    assert log.get("no_such_key", "default") == "default"
    assert log.entries[0].event_type == "POINT_IN_TIME" and log.entries[0].time_ms is not None
    assert log.entries[0].metadata["file"] == "version.cc"
    assert log.errors == [] and log.warnings == []


@needs_shared
def test_logs_without_num_errors_count_the_error_entries() -> None:
    older = [run for run in sorted(RESULTS.glob("*/*/*/performance/run_1"))
             if not parse_detail(run / DETAIL_FILE).has("num_errors")]
    assert older, "the shared tree has runs from LoadGen versions before num_errors"
    assert all(read_result(run).num_errors == 0 for run in older)


@needs_shared
def test_token_throughput_of_a_real_llm_run() -> None:
    run = RESULTS / "gh_action-reference-cpu-pytorch_v2.6.0-default_config/mixtral-8x7b/offline"
    result = read_result(run / "performance" / "run_1")
    summary = summary_of(run / "performance" / "run_1")
    assert result.tokens_per_second == pytest.approx(float(summary["Tokens per second"]))
    assert result.requested_settings["use_token_latencies"] is True
    # the headline stays the checker's samples/s; token metrics are extra fields
    assert result.metric_value == pytest.approx(float(summary["Samples per second"]))


# -------------------------------------------------------------------- broken and odd logs


@needs_shared
def test_summary_and_detail_disagreeing_is_an_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ORT_RUN, run)
    summary = run / SUMMARY_FILE
    summary.write_text(summary.read_text().replace("Result is : VALID", "Result is : INVALID"))
    with pytest.raises(LoadGenError) as info:
        read_result(run)
    assert str(summary) in info.value.message and "INVALID" in info.value.message
    assert info.value.hint and "different LoadGen runs" in info.value.hint


@needs_shared
def test_summary_of_another_scenario_is_an_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ORT_RUN, run)
    summary = run / SUMMARY_FILE
    summary.write_text(summary.read_text().replace("Scenario : Offline", "Scenario : Server"))
    with pytest.raises(LoadGenError, match="scenario Server"):
        read_result(run)


@needs_shared
def test_missing_summary_is_fine(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ORT_RUN, run)
    (run / SUMMARY_FILE).unlink()
    assert read_result(run).metric_value == pytest.approx(23.0274)


def test_missing_detail_log_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(LoadGenError) as info:
        read_result(tmp_path)
    assert str(tmp_path / DETAIL_FILE) in info.value.message
    assert info.value.hint
    (tmp_path / "2025-01-01_mlperf_log_detail.txt").write_text("")
    with pytest.raises(LoadGenError) as info:
        read_result(tmp_path)
    assert info.value.hint and "2025-01-01_mlperf_log_detail.txt" in info.value.hint


@needs_shared
def test_truncated_detail_log_names_the_line(tmp_path: Path) -> None:
    lines = (ORT_RUN / DETAIL_FILE).read_text().splitlines(keepends=True)
    broken = tmp_path / DETAIL_FILE
    broken.write_text("".join(lines[:40]) + lines[40][:60])
    with pytest.raises(LoadGenError) as info:
        read_result(tmp_path)
    assert f"{broken}:41" in info.value.message
    assert info.value.hint and "ends in the middle" in info.value.hint
    # damage in the middle of the file is reported as such
    broken.write_text("".join(lines[:10]) + lines[10][:60] + "\n" + "".join(lines[11:]))
    with pytest.raises(LoadGenError, match=r":11 ") as info:
        parse_detail(broken)
    assert info.value.hint and "damaged" in info.value.hint


def test_empty_detail_log_is_an_error(tmp_path: Path) -> None:
    (tmp_path / DETAIL_FILE).write_text("")
    with pytest.raises(LoadGenError, match="no LoadGen entries"):
        read_result(tmp_path)


def _entry(key: str, value_text: str, error: bool = False) -> str:
    """A line exactly as LoadGen's AsyncLog::LogDetail writes it (logging.h)."""
    flag = "true" if error else "false"
    return (
        f':::MLLOG {{"key": "{key}", "value": {value_text}, "time_ms": 1.000250, '
        f'"namespace": "mlperf::logging", "event_type": "POINT_IN_TIME", "metadata": '
        f'{{"is_error": {flag}, "is_warning": false, "file": "x.cc", "line_no": 1, '
        f'"pid": 1, "tid": 1}}}}'
    )


def test_values_loadgen_writes_without_json_escaping_are_read() -> None:
    # LoadGen quotes strings without escaping them and writes doubles with <<.
    log = parse_detail_text("\n".join([
        _entry("effective_scenario", '"Server"'),
        _entry("effective_test_mode", '"PerformanceOnly"'),
        _entry("sut_name", '"My "fast" SUT \\ v2"'),
        _entry("result_completed_samples_per_sec", "inf"),
        _entry("result_scheduled_samples_per_sec", "-nan"),
        _entry("error_runtime", '"Ending early: "quoted""', error=True),
    ]))
    assert log.get("sut_name") == 'My "fast" SUT \\ v2'
    assert log.get("result_completed_samples_per_sec") == float("inf")
    result = result_from_detail(log)
    assert result.metric_value is None  # a non-finite number is no metric
    assert result.scheduled_samples_per_sec is None
    assert result.error_messages == ['Ending early: "quoted"'] and result.num_errors == 1


def test_detail_log_of_an_unknown_scenario_is_an_error() -> None:
    log = parse_detail_text(_entry("effective_scenario", '"Interactive"') + "\n"
                            + _entry("effective_test_mode", '"PerformanceOnly"'))
    with pytest.raises(LoadGenError, match="unknown scenario 'Interactive'"):
        result_from_detail(log)


def test_old_logging_format_names_are_normalised() -> None:
    log = parse_detail_text(_entry("requested_scenario", '"Single Stream"') + "\n"
                            + _entry("requested_test_mode", '"Performance"'))
    result = result_from_detail(log)
    assert (result.scenario, result.mode) == ("SingleStream", "PerformanceOnly")


@needs_shared
def test_a_large_detail_log_parses_fast(tmp_path: Path) -> None:
    lines = (ORT_RUN / DETAIL_FILE).read_text().splitlines(keepends=True)
    body = "".join(line for line in lines if "loadgen_file_sha1" not in line)
    big = tmp_path / DETAIL_FILE
    big.write_text("".join(lines) + body * (8_000_000 // len(body)))
    megabytes = big.stat().st_size / 1e6
    start = time.perf_counter()
    log = parse_detail(big)
    elapsed = time.perf_counter() - start
    assert len(log) > 20_000
    assert elapsed / megabytes < 0.25, f"{elapsed / megabytes:.3f} s per MB"


# ------------------------------------------------------------------------ the summary parser


def test_summary_lines_loadgen_writes() -> None:
    text = "\n".join([
        "================================================",
        "MLPerf Results Summary",
        "SUT name : PySUT",
        "Mode     : PerformanceOnly",
        "90.0th percentile latency (ns) : 1617",
        "Result is : INVALID",
        "  Performance constraints satisfied : Yes",
        "  Min duration satisfied : NO",
        "  Early stopping satisfied: Yes",
        "Recommendations:",
        " * Decrease the expected latency so the loadgen pre-generates more queries.",
        "Early Stopping Result:",
        " * Early stopping 90.0th percentile estimate: 1545",
        "Min latency (ns)                : 1001",
        "target_latency (ns): 0",
        "Min latency (ns)                : 9999",
        "No warnings encountered during test.",
    ])
    assert parse_summary(text) == {
        "SUT name": "PySUT",
        "Mode": "PerformanceOnly",
        "90.0th percentile latency (ns)": "1617",
        "Result is": "INVALID",
        "Performance constraints satisfied": "Yes",
        "Min duration satisfied": "NO",
        "Early stopping satisfied": "Yes",
        "Min latency (ns)": "1001",
        "target_latency (ns)": "0",
    }


_ONE_LINE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
_KEYS = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                              blacklist_characters=":"), min_size=1, max_size=30).filter(
    lambda key: bool(key.strip()) and not key.strip().startswith(("*", "=")))
_VALUES = st.text(_ONE_LINE, min_size=1, max_size=40).filter(lambda value: bool(value.strip()))


@given(st.text())
def test_parse_summary_never_raises(text: str) -> None:
    parsed = parse_summary(text)
    assert all(key and value for key, value in parsed.items())
    assert all(key == key.strip() and value == value.strip() for key, value in parsed.items())


@given(_KEYS, _VALUES, st.sampled_from([" : ", ": ", ":", "    :   "]))
def test_parse_summary_reads_key_value_lines(key: str, value: str, colon: str) -> None:
    text = f"================\nMLPerf Results Summary\n{key}{colon}{value}\n * a note: 1\n"
    assert parse_summary(text)[key.strip()] == value.strip()


# -------------------------------------------------------------- logs made by real LoadGen


def _loadgen_child(job_file: str) -> None:
    """Run one LoadGen test described by a JSON job (the body of a fresh process)."""
    import json
    import pathlib

    import mlperf_loadgen as lg
    import numpy as np

    job = json.loads(pathlib.Path(job_file).read_text())
    settings = lg.TestSettings()
    status = settings.FromConfig(job["user_conf"], job["model"], job["scenario"])
    if status != 0:
        raise SystemExit(f"FromConfig returned {status}")
    settings.scenario = getattr(lg.TestScenario, job["scenario"])
    settings.mode = getattr(lg.TestMode, job["mode"])

    answers = np.arange(job["samples"], dtype=np.float32)  # sample i answers float(i)
    base = answers.ctypes.data  # `answers` outlives every QuerySamplesComplete call

    def issue(samples: list[lg.QuerySample]) -> None:
        lg.QuerySamplesComplete(
            [lg.QuerySampleResponse(s.id, base + 4 * s.index, 4) for s in samples])

    def nothing(indices: list[int] | None = None) -> None:
        return None

    output = lg.LogOutputSettings()
    output.outdir = job["outdir"]
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = False
    sut = lg.ConstructSUT(issue, nothing)
    qsl = lg.ConstructQSL(job["samples"], job["samples"], nothing, nothing)
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, job["audit_config"])
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


_CHILD = (
    "from __future__ import annotations\nimport sys\n"
    + inspect.getsource(_loadgen_child)
    + "\n_loadgen_child(sys.argv[1])\n"
)
SAMPLES = 64
# TEST01's audit.config, as LoadGen reads it (model `*`; keys from TestSettings::FromConfig)
AUDIT_CONFIG = (
    "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n"
    "*.*.accuracy_log_sampling_target = 8\n"
)
STRAY_AUDIT_CONFIG = "*.*.mode = 1\n"

# user.conf settings that make each scenario quick and VALID with a SUT that answers at
# once: LoadGen pre-generates queries for 2 x min_duration at the *expected* rate, so the
# expected latency must be below the real one (about 2 µs for SingleStream, 15 µs for a
# MultiStream query of 8 here); Offline's duration is the time to the last answer, so its
# expected QPS must be above what the SUT really does (0.5-1 M samples/s here);
# Server's early stopping needs ~460 queries when none is late, ~660 with one, so 1000
# leaves room for a few late ones on a loaded machine, and a 100 ms bound keeps them rare.
FAST = {
    "SingleStream": {"min_duration": 50, "target_latency": 0.001},
    "MultiStream": {"min_duration": 50, "target_latency": 0.005},  # 662 queries: mlperf.conf
    "Server": {"min_duration": 200, "min_query_count": 1000, "target_qps": 2000,
               "target_latency": 100},
    "Offline": {"min_duration": 10, "target_qps": 4_000_000},
}


@dataclass(frozen=True)
class Job:
    scenario: str
    mode: str = "PerformanceOnly"
    conf: dict[str, float] = field(default_factory=dict)
    audit: bool = False


JOBS = {
    **{scenario: Job(scenario, conf=conf) for scenario, conf in FAST.items()},
    "accuracy": Job("Offline", "AccuracyOnly", FAST["Offline"]),
    "audit": Job("Offline", conf=FAST["Offline"], audit=True),
    # the mlperf.conf placeholder latency (10 ms) with a fast SUT: LoadGen runs out of
    # queries long before the minimum duration
    "invalid": Job("SingleStream", conf={"min_duration": 50, "target_latency": 10}),
    # too few queries for MultiStream's early stopping (662), all else met
    "early_stop": Job("MultiStream", conf={"min_duration": 0, "target_latency": 5,
                                           "min_query_count": 100}),
}


def _run(name: str, job: Job, root: Path) -> Path:
    out = root / name
    out.mkdir()
    user_conf = out / "user.conf"
    user_conf.write_text("".join(f"tiny.{job.scenario}.{key} = {value}\n"
                                 for key, value in job.conf.items()))
    # LoadGen's default audit config is ./audit.config; every run puts one in its working
    # directory, and only the audit run names it: a stray one would turn a run into an
    # accuracy run (mode 1) if it applied
    audit = out / "audit.config"
    audit.write_text(AUDIT_CONFIG if job.audit else STRAY_AUDIT_CONFIG)
    spec = {"user_conf": str(user_conf), "model": "tiny", "scenario": job.scenario,
            "mode": job.mode, "samples": SAMPLES, "outdir": str(out),
            "audit_config": str(audit if job.audit else root / "absent" / "audit.config")}
    (out / "job.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(out / "job.json")], cwd=out,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("mlperf_loadgen")
    root = tmp_path_factory.mktemp("loadgen-runs")
    return {name: _run(name, job, root) for name, job in JOBS.items()}


def _estimate(summary_text: str) -> int:
    """The first early-stopping estimate in the summary's free text."""
    found = re.search(r"Early stopping [\d.]+th percentile estimate: (\d+)", summary_text)
    assert found, summary_text
    return int(found.group(1))


@pytest.mark.parametrize(
    ("scenario", "name", "unit"),
    [
        ("Offline", "samples per second", "Samples/s"),
        ("Server", "completed samples per second", "Samples/s"),
        ("SingleStream", "90th percentile latency (early stopping)", "ms"),
        ("MultiStream", "99th percentile per-query latency (early stopping)", "ms"),
    ],
)
def test_every_scenario_of_a_real_run(runs: dict[str, Path], scenario: str, name: str,
                                      unit: str) -> None:
    run = runs[scenario]
    result = read_result(run)
    summary = summary_of(run)
    assert (result.scenario, result.mode) == (scenario, "PerformanceOnly")
    assert result.valid is True, (result.invalid_reason, result.error_messages)
    assert summary["Result is"] == "VALID"
    assert (result.metric_name, result.metric_unit) == (name, unit)
    assert result.metric_value is not None and result.metric_value > 0
    assert result.min_duration_met and result.min_queries_met and result.early_stopping_met
    assert result.num_errors == 0 and result.error_messages == []
    assert result.audit_config_found is False
    assert result.qsl_reported_total_count == SAMPLES
    assert result.sut_name == "PySUT" and result.loadgen_version
    assert result.duration_ms is not None and result.duration_ms >= 0
    assert result.effective_settings["scenario"] == scenario
    assert result.effective_settings["min_duration_ms"] == FAST[scenario]["min_duration"]
    assert result.generated_query_count and result.generated_query_count >= 1
    assert result.query_count and result.query_count >= 1


def test_real_singlestream_numbers_match_its_summary(runs: dict[str, Path]) -> None:
    result = read_result(runs["SingleStream"])
    text = (runs["SingleStream"] / SUMMARY_FILE).read_text()
    summary = parse_summary(text)
    p90 = int(summary["90.0th percentile latency (ns)"])
    assert p90 == result.latency_percentiles_ns["90.00"]
    assert result.early_stopping_latency_ss_ns == _estimate(text)
    assert result.metric_value == pytest.approx(_estimate(text) / 1e6)
    assert result.early_stopping_latency_ms_ns  # SingleStream's 99th estimate, for MultiStream
    assert result.qps_with_loadgen_overhead == pytest.approx(
        float(summary["QPS w/ loadgen overhead"]), rel=1e-4)
    assert result.qps_without_loadgen_overhead == pytest.approx(
        float(summary["QPS w/o loadgen overhead"]), rel=1e-4)
    assert result.min_latency_ns == int(summary["Min latency (ns)"])
    assert result.early_stopping_result and "Processed at least 64 queries" in (
        result.early_stopping_result)
    assert result.effective_settings["target_latency_percentile"] == pytest.approx(0.9)


def test_real_multistream_numbers_match_its_summary(runs: dict[str, Path]) -> None:
    result = read_result(runs["MultiStream"])
    text = (runs["MultiStream"] / SUMMARY_FILE).read_text()
    summary = parse_summary(text)
    p99 = int(summary["99.0th percentile latency (ns)"])
    assert p99 == result.query_latency_percentiles_ns["99.00"]  # per query: 8 samples
    assert result.early_stopping_latency_ms_ns == _estimate(text)
    assert result.metric_value == pytest.approx(_estimate(text) / 1e6)
    # the summary's latency block is per query in MultiStream
    assert result.min_query_latency_ns == int(summary["Min latency (ns)"])
    assert result.effective_settings["samples_per_query"] == 8
    assert result.query_count is not None and result.query_count >= 662


def test_real_server_numbers_match_its_summary(runs: dict[str, Path]) -> None:
    result = read_result(runs["Server"])
    summary = summary_of(runs["Server"])
    assert result.performance_constraints_met is True
    assert summary["Performance constraints satisfied"] == "Yes"
    assert result.metric_value == pytest.approx(
        float(summary["Completed samples per second"]), abs=0.01)
    assert result.scheduled_samples_per_sec == pytest.approx(
        float(summary["Scheduled samples per second"]), abs=0.01)
    assert result.overlatency_query_count is not None
    assert result.effective_settings["target_latency_ns"] == 100_000_000
    assert result.effective_settings["target_qps"] == 2000
    assert result.latency_percentiles_ns["99.00"] == int(summary["99.00 percentile latency (ns)"])


def test_real_offline_numbers_match_its_summary(runs: dict[str, Path]) -> None:
    result = read_result(runs["Offline"])
    summary = summary_of(runs["Offline"])
    assert result.metric_value == pytest.approx(float(summary["Samples per second"]), rel=1e-5)
    assert result.performance_constraints_met is None
    assert result.early_stopping_latency_ss_ns is None
    assert result.query_count == 1 == result.generated_query_count
    assert result.effective_settings["samples_per_query"] == int(summary["samples_per_query"])
    assert result.generated_samples_per_query == result.effective_settings["samples_per_query"]
    # the run lasts until the last answer: at least the minimum duration
    assert result.max_latency_ns is not None and result.max_latency_ns >= 10e6


def test_real_accuracy_run(runs: dict[str, Path]) -> None:
    result = read_result(runs["accuracy"])
    assert (result.scenario, result.mode) == ("Offline", "AccuracyOnly")
    assert result.valid is None and result.result_validity is None
    assert result.metric_value is None and result.metric_name is None
    assert "Result is" not in summary_of(runs["accuracy"])
    # every sample answered once, with the bytes of float32(index)
    logged = json.loads((runs["accuracy"] / ACCURACY_FILE).read_text())
    assert sorted(entry["qsl_idx"] for entry in logged) == list(range(SAMPLES))
    for entry in logged:
        assert entry["data"] == _float32_hex(entry["qsl_idx"])


def _float32_hex(number: int) -> str:
    import struct

    return struct.pack("<f", float(number)).hex().upper()


def test_real_audit_config_is_reported(runs: dict[str, Path]) -> None:
    result = read_result(runs["audit"])
    assert result.audit_config_found is True
    assert any("Found Audit Config file" in message for message in result.warning_messages)
    assert result.effective_settings["accuracy_log_sampling_target"] == 8
    assert result.valid is True and result.mode == "PerformanceOnly"
    logged = json.loads((runs["audit"] / ACCURACY_FILE).read_text())
    assert logged, "TEST01's audit.config logs sampled answers in a performance run"
    assert read_result(runs["Offline"]).effective_settings["accuracy_log_sampling_target"] == 0


def test_real_invalid_run(runs: dict[str, Path]) -> None:
    result = read_result(runs["invalid"])
    summary = summary_of(runs["invalid"])
    assert result.valid is False and result.result_validity == "INVALID"
    assert summary["Result is"] == "INVALID" and summary["Min duration satisfied"] == "NO"
    assert result.min_duration_met is False
    assert result.invalid_reason and "Decrease the expected latency" in result.invalid_reason
    assert result.num_errors >= 1
    assert any("Ran out of generated queries" in message for message in result.error_messages)
    assert result.metric_value is not None  # an INVALID run still has its number


def test_real_run_that_fails_only_early_stopping(runs: dict[str, Path]) -> None:
    result = read_result(runs["early_stop"])
    detail = parse_detail(runs["early_stop"] / DETAIL_FILE)
    assert result.valid is False and result.early_stopping_met is False
    assert result.min_duration_met is True and result.min_queries_met is True
    # LoadGen logs an empty reason here, and 0 for the estimate it could not make
    assert detail.get("result_invalid_reason") == ""
    assert detail.get("early_stopping_latency_ms") == 0
    assert result.invalid_reason and "at least 662 queries" in result.invalid_reason
    assert result.metric_value is None and result.early_stopping_latency_ms_ns is None
    assert result.query_latency_percentiles_ns["99.00"] > 0
    assert summary_of(runs["early_stop"])["Early stopping satisfied"] == "NO"

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlperf_pilot.compliance.run import audit_config_text, check_audit_applied
from mlperf_pilot.compliance.verify import (
    accuracy_delta_ok,
    compare_accuracy_logs,
    verify_performance,
    verify_test01_accuracy,
)
from mlperf_pilot.config import Scenario
from mlperf_pilot.errors import ComplianceError
from mlperf_pilot.loadgen.logs import parse_detail
from submission_trees import detail_line, write_detail


def acc_log(path: Path, entries: list[tuple[int, float]]) -> Path:
    lines = [f'{{ "seq_id" : {i}, "qsl_idx" : {q}, '
             f'"data" : "{np.array([v], np.float32).tobytes().hex().upper()}" }}'
             for i, (q, v) in enumerate(entries)]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return path


def test_identical_outputs_pass_and_differences_fail(tmp_path: Path) -> None:
    ref = acc_log(tmp_path / "ref.json", [(0, 1), (1, 2), (2, 3)])
    same = acc_log(tmp_path / "same.json", [(2, 3), (0, 1)])
    verdict, comparison = verify_test01_accuracy(ref, same)
    assert verdict.passed and comparison.matched == 2 and "TEST PASS" in verdict.text
    other = acc_log(tmp_path / "other.json", [(2, 3), (0, 9), (7, 1)])
    verdict, comparison = verify_test01_accuracy(ref, other)
    assert not verdict.passed and "TEST FAIL" in verdict.text
    assert (comparison.mismatched, comparison.missing, comparison.mismatched_indices) == (1, 1, [0])
    empty = acc_log(tmp_path / "empty.json", [])
    assert not compare_accuracy_logs(ref, empty).deterministic_pass


def test_accuracy_delta_rule() -> None:
    assert accuracy_delta_ok(76.0, 76.5, 1.0)[0]
    ok, delta = accuracy_delta_ok(70.0, 76.0, 1.0)
    assert not ok and delta == pytest.approx(abs(1 - 70 / 76) * 100)
    assert not accuracy_delta_ok(0.0, 76.0, 1.0)[0]


def perf_log(path: Path, scenario: str, value: float, valid: bool = True) -> Path:
    field = {"Offline": "result_samples_per_second", "SingleStream": "early_stopping_latency_ss",
             "Server": "result_completed_samples_per_sec"}[scenario]
    write_detail(path, {"effective_scenario": scenario, "effective_test_mode": "PerformanceOnly",
                        "result_validity": "VALID" if valid else "INVALID", field: value,
                        "effective_target_latency_ns": 15000000})
    return path


@pytest.mark.parametrize(("test", "scenario", "ref", "got", "passed"), [
    ("TEST01", "Offline", 100, 109, True),
    ("TEST01", "Offline", 100, 89, False),
    ("TEST01", "SingleStream", 150_000, 175_000, True),  # <= 0.2 ms: +-20%
    ("TEST01", "SingleStream", 5_000_000, 5_600_000, False),
    ("TEST04", "Offline", 100, 108, True),
    ("TEST04", "Offline", 100, 125, False),  # much faster on one sample: caching
    ("TEST04", "SingleStream", 5_000_000, 3_000_000, False),
    ("TEST04", "SingleStream", 5_000_000, 4_500_000, True),
    ("TEST05", "Offline", 100, 96, True),
    ("TEST05", "Offline", 100, 90, False),
])
def test_performance_bands(tmp_path: Path, test: str, scenario: str, ref: float, got: float,
                           passed: bool) -> None:
    threshold = {"TEST01": 0.10, "TEST04": 0.10, "TEST05": 0.05}[test]
    verdict = verify_performance(perf_log(tmp_path / "r.txt", scenario, ref),
                                 perf_log(tmp_path / "t.txt", scenario, got), test, threshold)
    assert verdict.passed is passed, verdict.lines


def test_an_invalid_run_fails_verification(tmp_path: Path) -> None:
    verdict = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 100),
                                 perf_log(tmp_path / "t.txt", "Offline", 100, valid=False),
                                 "TEST01", 0.1)
    assert not verdict.passed and "not a VALID run" in verdict.lines[0]


def test_audit_configs() -> None:
    text = audit_config_text("TEST01", "retinanet", Scenario.OFFLINE)
    assert "*.Offline.mode = 2" in text and "*.Offline.accuracy_log_sampling_target = 256" in text
    assert "accuracy_log_rng_seed = 720381539243781796" in text
    assert "sampling_target = 4096" in audit_config_text("TEST01", "resnet", Scenario.SERVER)
    four = audit_config_text("TEST04", "resnet", Scenario.SINGLE_STREAM)
    assert "*.SingleStream.performance_issue_same = 1" in four
    assert "*.SingleStream.performance_issue_same_index = 3" in four


def test_an_ignored_audit_config_is_an_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    write_detail(plain, {"effective_accuracy_log_sampling_target": 0})
    with pytest.raises(ComplianceError, match="not applied"):
        check_audit_applied("TEST01", parse_detail(plain), plain, {})
    applied = tmp_path / "applied.txt"
    write_detail(applied, {"effective_accuracy_log_sampling_target": 4096},
                 [detail_line("warning_generic_message", "Found Audit Config file "
                              "(audit.config). Overriding TestSettings", warning=True)])
    check_audit_applied("TEST01", parse_detail(applied), applied, {})
    with pytest.raises(ComplianceError, match="seeds were not changed"):
        write_detail(applied, {"effective_qsl_rng_seed": 5},
                     [detail_line("warning_generic_message", "Found Audit Config file",
                                  warning=True)])
        check_audit_applied("TEST05", parse_detail(applied), applied, {"qsl_rng_seed": 5})


def test_a_failed_band_says_how_far_off_the_run_was(tmp_path: Path) -> None:
    verdict = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 100),
                                 perf_log(tmp_path / "t.txt", "Offline", 125), "TEST01", 0.1)
    assert not verdict.passed
    assert verdict.summary == ("test 125 samples/s vs reference 100 samples/s (+25.0%), "
                               "allowed band 10%")
    # the file keeps the official lines only
    assert verdict.text.splitlines() == ["reference score = 100.0", "test score = 125.0",
                                         "allowed band = 10%", "TEST FAIL"]


def test_only_a_band_comparison_is_marked_as_one(tmp_path: Path) -> None:
    band = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 100),
                              perf_log(tmp_path / "t.txt", "Offline", 60), "TEST01", 0.1)
    assert not band.passed and band.band  # test mode may call this one indicative
    invalid = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 100),
                                 perf_log(tmp_path / "t.txt", "Offline", 100, valid=False),
                                 "TEST01", 0.1)
    assert not invalid.passed and not invalid.band  # never indicative
    write_detail(tmp_path / "s.txt", {"effective_scenario": "SingleStream",
                                      "result_validity": "VALID",
                                      "early_stopping_latency_ss": 5})
    other = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 100),
                               tmp_path / "s.txt", "TEST01", 0.1)
    assert not other.passed and not other.band  # different scenarios: a logic error


def test_messages_give_latencies_in_ms_not_nanoseconds(tmp_path: Path) -> None:
    verdict = verify_performance(perf_log(tmp_path / "r.txt", "SingleStream", 5_000_000),
                                 perf_log(tmp_path / "t.txt", "SingleStream", 7_250_000),
                                 "TEST01", 0.1)
    assert not verdict.passed
    assert verdict.summary == "test 7.25 ms vs reference 5 ms (+45.0%), allowed band 10%"
    fast = verify_performance(perf_log(tmp_path / "r.txt", "Offline", 12_345.6),
                              perf_log(tmp_path / "t.txt", "Offline", 20_000), "TEST01", 0.1)
    assert fast.summary.startswith("test 20,000.0 samples/s vs reference 12,345.6 samples/s")
    write_detail(tmp_path / "s.txt", {"effective_scenario": "Server", "result_validity": "VALID",
                                      "result_completed_samples_per_sec": 10,
                                      "effective_target_latency_ns": 15_000_000})
    write_detail(tmp_path / "u.txt", {"effective_scenario": "Server", "result_validity": "VALID",
                                      "result_completed_samples_per_sec": 10,
                                      "effective_target_latency_ns": 65_000_000})
    bound = verify_performance(tmp_path / "s.txt", tmp_path / "u.txt", "TEST01", 0.1)
    assert bound.summary == ("Server latency bound 65 ms in the test, 15 ms in the "
                             "reference")

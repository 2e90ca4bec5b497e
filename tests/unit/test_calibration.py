"""The rerun rules: which INVALID runs are rerun with another target, and which never."""

from __future__ import annotations

import pytest

from mlperf_pilot.calibration import adjust, bisect_target, not_rerunnable, target_from_find
from mlperf_pilot.config import Scenario
from mlperf_pilot.loadgen.logs import LoadGenResult


def test_a_run_with_failed_samples_is_never_rerun() -> None:
    why = not_rerunnable(24, {"ValueError: boom": 24}, ["24 sample(s) failed: ValueError"])
    assert why is not None
    assert why.startswith("24 sample(s) failed (ValueError: boom)")
    assert "measures the failures" in why


def test_a_run_with_loadgen_errors_is_never_rerun() -> None:
    why = not_rerunnable(0, {}, ["LoadGen error: Too many queries"])
    assert why is not None and why.startswith("LoadGen error: Too many queries")


def test_a_clean_invalid_run_may_be_rerun() -> None:
    assert not_rerunnable(0, {}, ["LoadGen: INVALID, min duration not satisfied"]) is None
    loadgen = LoadGenResult(scenario=Scenario.OFFLINE, mode="PerformanceOnly", valid=False,
                            min_duration_met=False, samples_per_second=100.0, duration_ms=200,
                            effective_settings={"min_duration_ms": 400})
    values, reason = adjust(Scenario.OFFLINE, loadgen, {"target_qps": 50.0}) or ({}, "")
    assert values == {"target_qps": 125.0}  # max(100, 50 x 400/200) x 1.25
    assert "minimum duration" in reason
    # a record written before LoadGenResult was typed holds it as a dict: same answer
    assert adjust(Scenario.OFFLINE, loadgen.model_dump(mode="json"),
                  {"target_qps": 50.0}) == (values, reason)


def test_a_run_without_a_loadgen_result_gives_no_target() -> None:
    assert adjust(Scenario.OFFLINE, None, {"target_qps": 50.0}) is None
    assert adjust(Scenario.OFFLINE, {}, {"target_qps": 50.0}) is None  # `record.loadgen or {}`
    assert target_from_find(Scenario.SERVER, None) == {}


def test_find_targets_come_from_the_typed_result() -> None:
    single = LoadGenResult(scenario=Scenario.SINGLE_STREAM, mode="PerformanceOnly", valid=True,
                           early_stopping_latency_ss_ns=2_000_000.0,
                           latency_percentiles_ns={"90.00": 1_500_000.0})
    assert target_from_find(Scenario.SINGLE_STREAM, single) == {"target_latency_ms": 1.8}
    # no early-stopping estimate (too few queries): the 90th percentile stands in
    multi = single.model_copy(update={"scenario": Scenario.MULTI_STREAM,
                                      "early_stopping_latency_ss_ns": None})
    assert target_from_find(Scenario.MULTI_STREAM, multi) == {"target_latency_ms": 1.35}
    offline = LoadGenResult(scenario=Scenario.OFFLINE, mode="PerformanceOnly", valid=True,
                            samples_per_second=200.0)
    assert target_from_find(Scenario.OFFLINE, offline) == {"target_qps": 180.0}


# --- the Server QPS bisection (calibrate find and the bench's server search) ----------


def test_bisection_finds_the_highest_passing_value_by_halving() -> None:
    tried: list[float] = []

    def sustains(qps: float) -> bool:  # a system that is VALID up to 70 QPS
        tried.append(qps)
        return qps <= 70.0

    found = bisect_target(sustains, 0.0, 100.0, 5)
    assert tried == [50.0, 75.0, 62.5, 68.75, 71.875]
    assert [p.passed for p in found.probes] == [True, False, True, True, False]
    assert found.best is not None and found.best.value == 68.75
    assert found.last is not None and found.last.value == 71.875


def test_bisection_keeps_each_outcome_and_judges_it_with_passed() -> None:
    def run(qps: float) -> dict[str, object]:
        return {"qps": qps, "status": "VALID" if qps < 30 else "INVALID"}

    found = bisect_target(run, 10.0, 50.0, 3, passed=lambda r: r["status"] == "VALID")
    assert [p.outcome["qps"] for p in found.probes] == [30.0, 20.0, 25.0]
    assert found.best is not None and found.best.outcome == {"qps": 25.0, "status": "VALID"}


def test_bisection_where_nothing_passes_has_no_best() -> None:
    found = bisect_target(lambda qps: False, 1.0, 2.0, 3)
    assert found.best is None
    assert [p.value for p in found.probes] == [1.5, 1.25, 1.125]
    assert found.last is not None and not found.last.passed
    assert bisect_target(lambda qps: True, 1.0, 2.0, 0).probes == ()


def test_bisection_refuses_inverted_bounds() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        bisect_target(lambda qps: True, 5.0, 1.0, 2)


def test_a_test_mode_offline_rerun_asks_with_the_test_padding() -> None:
    # a short run of a warming model: 80 samples in 285 ms, each run faster than the last
    loadgen = LoadGenResult(scenario=Scenario.OFFLINE, mode="PerformanceOnly", valid=False,
                            min_duration_met=False, samples_per_second=280.0, duration_ms=285,
                            effective_settings={"min_duration_ms": 300})
    values, reason = adjust(Scenario.OFFLINE, loadgen, {}, offline_raise=1.5) or ({}, "")
    assert values == {"target_qps": 420.0}  # 280 x 1.5, not 280 x 1.25 = 350
    assert "1.5x the measured rate" in reason

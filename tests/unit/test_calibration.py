"""The rerun rules: which INVALID runs are rerun with another target, and which never."""

from __future__ import annotations

from mlperf_pilot.calibration import adjust, not_rerunnable
from mlperf_pilot.config import Scenario


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
    loadgen = {"valid": False, "min_duration_met": False, "samples_per_second": 100.0,
               "duration_ms": 200, "effective_settings": {"min_duration_ms": 400}}
    values, reason = adjust(Scenario.OFFLINE, loadgen, {"target_qps": 50.0}) or ({}, "")
    assert values == {"target_qps": 125.0}  # max(100, 50 x 400/200) x 1.25
    assert "minimum duration" in reason

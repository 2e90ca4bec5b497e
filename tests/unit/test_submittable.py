"""results.submittable: what a submission would make of one record, in words with units,
from the checker's own rules; and whether a model file was verified."""

from __future__ import annotations

from pathlib import Path

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.loadgen.logs import LoadGenResult
from mlperf_pilot.results.records import AccuracyRecord, RunRecord
from mlperf_pilot.results.submittable import (
    SubmissionFacts,
    apply,
    describe,
    round_benchmark,
)
from mlperf_pilot.submission.check_performance import Shortfall
from mlperf_pilot.submission.rounds import DEFAULT_ROUND
from mlperf_pilot.vocab import ExecutionMode, Mode, RunStatus, Scenario

VALID_OFFLINE = {"performance_sample_count": 1024, "min_duration_ms": 600000,
                 "min_query_count": 1, "samples_per_query": 50000,
                 "target_latency_ns": 0}


def _record(mode: Mode = Mode.PERFORMANCE, scenario: Scenario = Scenario.OFFLINE,
            settings: dict[str, object] | None = None) -> RunRecord:
    loadgen = LoadGenResult(scenario=scenario, mode="PerformanceOnly", valid=True,
                            effective_settings=settings or {})
    return RunRecord(model="resnet50", mlperf_model="resnet50", backend="onnxruntime",
                     backend_version=None, device="cpu", device_in_use="cpu",
                     system="s", scenario=scenario, mode=mode, status=RunStatus.VALID,
                     log_dir="/x", loadgen=loadgen)


def _facts(mode: ExecutionMode = ExecutionMode.VALID, **update: object) -> SubmissionFacts:
    values: dict[str, object] = {
        "execution_mode": mode, "round": DEFAULT_ROUND, "benchmark": "resnet",
        "dataset_size": 50000, "accuracy_target": 75.6954, "model_verified": True}
    values.update(update)
    return SubmissionFacts.model_validate(values)


def test_a_valid_run_with_the_official_settings_is_submittable() -> None:
    record = _record(settings=VALID_OFFLINE)
    apply(record, _facts())
    assert record.submittable and record.not_submittable == []
    assert record.execution_mode is ExecutionMode.VALID and record.model_verified is True


def test_a_short_run_lists_every_broken_rule_with_units() -> None:
    settings = {**VALID_OFFLINE, "performance_sample_count": 15, "min_duration_ms": 1500,
                "samples_per_query": 100}
    record = _record(settings=settings)
    apply(record, _facts(ExecutionMode.TEST))
    assert not record.submittable
    assert record.not_submittable == [
        "test run", "performance_sample_count 15 < 1024", "min duration 1.5 s < 600 s",
        "100 samples per Offline query < 24,576"]


def test_server_latency_bound_and_query_counts_in_words() -> None:
    assert describe(Shortfall("r", "target_latency_ns", 65e6, 15e6)) == \
        "latency bound 65 ms > 15 ms"
    assert describe(Shortfall("r", "min_query_count", 100, 270336)) == \
        "min query count 100 < 270,336 queries"
    record = _record(scenario=Scenario.SERVER,
                     settings={"performance_sample_count": 1024, "min_duration_ms": 600000,
                               "min_query_count": 270336, "target_latency_ns": 65_000_000})
    apply(record, _facts())
    assert record.not_submittable == ["latency bound 65 ms > 15 ms"]


def test_accuracy_on_a_subset_and_below_the_target() -> None:
    record = _record(mode=Mode.ACCURACY)
    record.accuracy = AccuracyRecord(metric="top1", value=0.0, text="", total=15)
    apply(record, _facts())
    assert record.accuracy is not None
    assert record.accuracy.target == 75.6954 and record.accuracy.meets_target is False
    assert record.not_submittable == [
        "15 of 50,000 samples", "top1 0.000% below the closed-division target 75.695%"]


def test_failed_invalid_and_unknown_benchmarks_are_not_submittable() -> None:
    record = _record(settings=VALID_OFFLINE)
    record.status = RunStatus.INVALID
    apply(record, _facts(ExecutionMode.FIND, benchmark=None))
    assert record.not_submittable == [
        "find run (calibration probe)", "INVALID",
        f"resnet50 is not a benchmark of round {DEFAULT_ROUND}"]
    assert round_benchmark(DEFAULT_ROUND, "resnet") == "resnet"
    assert round_benchmark(DEFAULT_ROUND, "nothing-like-it") is None
    assert round_benchmark("v0.1", "resnet") is None  # an unknown round


def test_resolve_model_says_whether_the_file_was_verified(tmp_path: Path) -> None:
    card = load_catalog().model("resnet50")
    fmt = card.format(None)
    cache = AssetCache(tmp_path / "cache")
    model = tmp_path / "resnet50_v1.onnx"
    model.write_bytes(b"not the official file")
    given = resolve_model(card, fmt, model, cache)
    assert given.verified is False  # --model-path: never checked
    cache.add_external("model", "resnet50", model, meta={"checksum_verified": False})
    assert resolve_model(card, fmt, None, cache).verified is False  # cache add --no-verify
    cache.add_external("model", "resnet50", model, meta={"checksum_verified": True})
    assert resolve_model(card, fmt, None, cache).verified is True


def test_the_table_cells_and_lines_of_a_record() -> None:
    from mlperf_pilot.cli.render import next_step, status_text, submittable_line

    old = _record(settings=VALID_OFFLINE)  # a record of an earlier version: the verdict alone
    assert status_text(old) == "VALID" and submittable_line(old) is None
    assert next_step([old]) is None
    good = _record(settings=VALID_OFFLINE)
    apply(good, _facts())
    assert status_text(good) == "VALID (submittable)" and submittable_line(good) is None
    assert next_step([good]) == ("next: `mlperf-pilot submission generate` (then "
                                 "`submission check`)")
    bad = _record(settings={**VALID_OFFLINE, "min_duration_ms": 60000})
    bad.status = RunStatus.INVALID
    apply(bad, _facts())
    assert status_text(bad) == "INVALID (not submittable)"
    assert submittable_line(bad) == ("Offline performance: INVALID (not submittable: "
                                     "min duration 60 s < 600 s)")
    step = next_step([good, bad])
    assert step is not None and step.startswith("next: fix what makes the results above")

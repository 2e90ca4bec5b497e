"""Compliance tests and calibration through real LoadGen runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from mlperf_pilot.engine import RunObserver, resolve_spec, run_benchmark
from mlperf_pilot.loadgen.logs import parse_detail, read_result
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.vocab import ComplianceStatus, Mode, RunStatus


def _spec(**layer: object):
    base = {"model": "resnet50", "test_duration_ms": 400, "preprocess_workers": 1}
    return resolve_spec([{**base, **layer}])


def test_compliance_tests_run_isolated_and_verified(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path
) -> None:
    summary = run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                                  scenarios=["Offline"], results_dir=tmp_path,
                                  compliance=True))
    tests = {c.test: c for c in summary.compliance}
    assert set(tests) == {"TEST01", "TEST04"}  # what v6.1 requires for resnet
    scenario = tmp_path / "onnxruntime-cpu" / "resnet50" / "Offline"
    test01 = tests["TEST01"]
    # onnxruntime on CPU is deterministic: the logged outputs equal the accuracy run's
    assert "TEST PASS" in (scenario / "TEST01/verify_accuracy.txt").read_text()
    assert test01.accuracy_check and test01.accuracy_check.strip().endswith("TEST PASS")
    # (the +-10% performance band is judged too, but 0.4 s runs on a shared machine are
    # noisy, so only its presence is asserted here)
    assert "reference score" in (test01.performance_check or "")
    assert "num_perf_log_qsl_idx_match" in test01.accuracy_check
    for name in ("verify_performance.txt", "accuracy/mlperf_log_accuracy.json",
                 "accuracy/accuracy.txt", "performance/run_1/mlperf_log_detail.txt",
                 "performance/run_1/mlperf_log_summary.txt"):
        assert (scenario / "TEST01" / name).is_file(), name
    for test in ("TEST01", "TEST04"):
        run = scenario / ".compliance" / test
        assert not (run / "audit.config").exists()  # removed after the run
        result = read_result(run)
        assert result.audit_config_found
        assert (scenario / "records" / f"{test}.json").is_file()
    logged = json.loads((scenario / "TEST01/accuracy/mlperf_log_accuracy.json").read_text())
    assert logged  # accuracy logging really happened in performance mode
    assert parse_detail(scenario / ".compliance/TEST04/mlperf_log_detail.txt").get(
        "effective_performance_issue_same")
    # the normal runs never saw an audit.config
    assert not read_result(scenario / "performance/run_1").audit_config_found


def test_test05_uses_the_alternate_seeds(colour_imagenet: Path, resnet50_model: Path,
                                          tmp_path: Path) -> None:
    run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                        scenarios=["Offline"], modes=["performance"], results_dir=tmp_path))
    summary = run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                                  scenarios=["Offline"], modes=[], results_dir=tmp_path,
                                  compliance=True, compliance_tests=["TEST05"]))
    (record,) = summary.compliance
    assert record.test == "TEST05" and "not applied" not in " ".join(record.reasons)
    run = tmp_path / "onnxruntime-cpu/resnet50/Offline/.compliance/TEST05"
    normal = parse_detail(tmp_path / "onnxruntime-cpu/resnet50/Offline/performance/run_1/"
                          "mlperf_log_detail.txt")
    seeds = parse_detail(run / "mlperf_log_detail.txt")
    assert seeds.get("effective_qsl_rng_seed") != normal.get("effective_qsl_rng_seed")


def test_non_deterministic_outputs_fall_back_to_accuracy(colour_imagenet: Path,
                                                         resnet50_model: Path,
                                                         tmp_path: Path) -> None:
    run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                        scenarios=["Offline"], results_dir=tmp_path))
    # make the accuracy run disagree on one sample, as a non-deterministic backend would
    log = tmp_path / "onnxruntime-cpu/resnet50/Offline/accuracy/mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    entries[0]["data"] = "0000803F" if entries[0]["data"] != "0000803F" else "00000040"
    log.write_text(json.dumps(entries))
    summary = run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                                  scenarios=["Offline"], modes=[], results_dir=tmp_path,
                                  compliance=True, compliance_tests=["TEST01"]))
    (record,) = summary.compliance
    acc = tmp_path / "onnxruntime-cpu/resnet50/Offline/TEST01/accuracy"
    assert "TEST FAIL" in (acc.parent / "verify_accuracy.txt").read_text()
    assert sorted(p.name for p in acc.iterdir()) == [
        "accuracy.txt", "baseline_accuracy.txt", "compliance_accuracy.txt",
        "mlperf_log_accuracy.json"]
    assert "baseline accuracy" in (record.accuracy_check or "")


def test_compliance_without_the_runs_it_needs(colour_imagenet: Path, resnet50_model: Path,
                                              tmp_path: Path) -> None:
    summary = run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                                  scenarios=["Offline"], modes=[], results_dir=tmp_path,
                                  compliance=True))
    assert not summary.ok
    assert all(c.status is ComplianceStatus.FAIL for c in summary.compliance)
    assert any("performance run" in r for c in summary.compliance for r in c.reasons)


def test_a_stray_audit_config_in_the_working_folder_is_ignored(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audit.config").write_text("*.*.mode = 1\n")
    summary = run_benchmark(_spec(model_path=resnet50_model, dataset_path=colour_imagenet,
                                  scenarios=["Offline"], modes=["performance"],
                                  results_dir=tmp_path / "r"))
    loadgen = summary.records[0].loadgen
    assert loadgen is not None and not loadgen.audit_config_found
    assert loadgen.mode == "PerformanceOnly" and loadgen.run_mode is Mode.PERFORMANCE


class Attempts(RunObserver):
    def __init__(self) -> None:
        self.seen: list[RunRecord] = []

    def attempt(self, record: RunRecord) -> None:
        self.seen.append(record)


def test_find_then_valid_with_a_rerun(colour_imagenet: Path, resnet50_model: Path,
                                      tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    common = {"model_path": resnet50_model, "dataset_path": colour_imagenet,
              "results_dir": tmp_path / "r", "targets_file": targets}
    found = run_benchmark(_spec(**common, scenarios=["Offline", "SingleStream"],
                                execution_mode="find"))
    assert all(r.mode == "performance" for r in found.records)
    data = yaml.safe_load(targets.read_text())
    entry = data["onnxruntime-cpu"]["resnet50"]
    assert entry["Offline"]["target_qps"] > 0 and entry["SingleStream"]["target_latency_ms"] > 0
    assert targets.read_text().startswith("# mlperf-pilot calibration targets")
    # a target far too low makes the valid run end before its minimum duration
    entry["Offline"]["target_qps"] = 5
    targets.write_text(yaml.safe_dump(data))
    attempts = Attempts()
    valid = run_benchmark(_spec(**common, scenarios=["Offline"], modes=["performance"],
                                execution_mode="valid", max_reruns=3,
                                loadgen={"min_duration_ms": 400, "min_query_count": 1}),
                          observer=attempts)
    (record,) = valid.records
    assert record.status is RunStatus.VALID, (record.reasons, valid.notes)
    assert any("rerun 1" in note for note in valid.notes)
    kept = tmp_path / "r/onnxruntime-cpu/resnet50/Offline/.attempts/performance-1"
    assert (kept / "mlperf_log_detail.txt").is_file()
    assert json.loads((kept / "record.json").read_text())["status"] == "INVALID"
    # the superseded run reaches the observer with the path it has in the finished folder
    assert attempts.seen and Path(attempts.seen[0].log_dir) == kept
    assert attempts.seen[0].status is RunStatus.INVALID
    # the store has the superseded run (kind attempt, its logs kept in its run folder)
    from mlperf_pilot.results.store import open_store

    # (the find run's probes are other runs; a slow machine may need a second rerun)
    attempts_kept = {t.test_id: t for t in open_store(results_dir=tmp_path / "r")
                     .select(kind="attempt") if t.record.run_id == record.run_id}
    assert len(attempts_kept) == len(attempts.seen)
    attempt = attempts_kept[f"{record.run_id}-Offline-performance-attempt1"]
    assert attempt.record.status is RunStatus.INVALID
    assert (Path(attempt.record.log_dir) / "mlperf_log_detail.txt").read_bytes() == \
        (kept / "mlperf_log_detail.txt").read_bytes()
    assert yaml.safe_load(targets.read_text())["onnxruntime-cpu"]["resnet50"]["Offline"][
        "target_qps"] > 5
    assert os.path.basename(str(valid.targets_file)) == "targets.yaml"

"""Typed records: RunRecord/ComplianceRecord/Provenance through JSON, and the files
earlier versions wrote (plain-word statuses, loadgen as a dict, ISO strings, no run id)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlperf_pilot.compliance.run import INDICATIVE, OK_STATUSES, ComplianceRecord
from mlperf_pilot.config import RunSpec
from mlperf_pilot.errors import StoreError
from mlperf_pilot.loadgen.logs import LoadGenResult, read_result
from mlperf_pilot.results.provenance import (
    Provenance,
    RunSpecFile,
    Versions,
    WarmupEstimates,
    collect_versions,
    read_run_spec,
    read_versions,
    write_run_spec,
    write_versions,
)
from mlperf_pilot.results.records import (
    STATUS_FAILED,
    STATUS_VALID,
    AccuracyRecord,
    RunRecord,
    new_run_id,
    read_record,
    write_record,
)
from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.vocab import ComplianceStatus, Mode, RunStatus, Scenario, Severity

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlc-test-submission-v5.0"
ORT_RESNET = (SHARED / "open" / "MLCommons" / "results"
              / "gh_ubuntu-latest_x86-reference-cpu-onnxruntime_v1.21.1-default_config"
              / "resnet50" / "offline")
needs_shared = pytest.mark.skipif(not ORT_RESNET.is_dir(), reason=f"{SHARED} is not here")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
UTC = dt.timezone.utc


def _record(result: LoadGenResult | None, **fields: object) -> RunRecord:
    base: dict[str, object] = dict(
        model="resnet50", mlperf_model="resnet50", backend="onnxruntime",
        backend_version="1.21.1", device="cpu", device_in_use="cpu",
        system="onnxruntime-cpu", scenario=Scenario.OFFLINE, mode=Mode.PERFORMANCE,
        log_dir="/results/Offline/performance/run_1", loadgen=result,
    )
    base.update(fields)
    return RunRecord.model_validate(base)


@pytest.fixture(scope="module")
def real_result() -> LoadGenResult:
    return read_result(ORT_RESNET / "performance" / "run_1")


# ------------------------------------------------------------------------------ RunRecord


@needs_shared
def test_a_record_with_a_real_loadgen_result_round_trips_through_json(
        real_result: LoadGenResult, tmp_path: Path) -> None:
    record = _record(real_result, status=RunStatus.VALID, metric_value=real_result.metric_value,
                     metric_unit=real_result.metric_unit,
                     finished=dt.datetime(2025, 6, 5, 10, 20, tzinfo=UTC))
    path = tmp_path / "records" / "performance.json"
    write_record(record, path)
    back = read_record(path)
    assert back == record
    assert isinstance(back.loadgen, LoadGenResult)
    assert back.loadgen == real_result
    assert back.loadgen.scenario is Scenario.OFFLINE and back.loadgen.run_mode is Mode.PERFORMANCE
    assert back.loadgen.latency_percentiles_ns == real_result.latency_percentiles_ns
    assert back.scenario is Scenario.OFFLINE and back.mode is Mode.PERFORMANCE
    assert back.status is RunStatus.VALID and back.ok
    saved = json.loads(path.read_text())
    # the file holds the plain words and ISO 8601 times
    assert (saved["scenario"], saved["mode"], saved["status"]) == (
        "Offline", "performance", "VALID")
    assert saved["loadgen"]["scenario"] == "Offline"
    # "+00:00" as before (datetime.fromisoformat reads no "Z" before Python 3.11)
    assert saved["finished"] == "2025-06-05T10:20:00+00:00"
    assert dt.datetime.fromisoformat(saved["started"]) == record.started
    assert RUN_ID.match(saved["run_id"])


@needs_shared
def test_a_record_written_by_the_previous_version_still_reads(
        real_result: LoadGenResult, tmp_path: Path) -> None:
    old = {  # as records/<mode>.json was written before the records were typed
        "model": "resnet50", "mlperf_model": "resnet50", "backend": "onnxruntime",
        "backend_version": "1.21.1", "device": "cpu", "device_in_use": "cpu",
        "system": "onnxruntime-cpu", "scenario": "Offline", "mode": "performance",
        "status": "INVALID", "reasons": ["LoadGen: INVALID, min duration not satisfied"],
        "metric_name": "samples per second", "metric_value": 12.5, "metric_unit": "Samples/s",
        "accuracy": None, "samples_failed": 0, "errors": {}, "log_dir": "/r/performance/run_1",
        "started": "2025-01-02T03:04:05+00:00", "finished": "2025-01-02T03:04:09+00:00",
        "duration_s": 4.1, "peak_rss_mb": 210.5,
        "loadgen": real_result.model_dump(mode="json"),
        "reference_line": "TestScenario.Offline qps=12.50", "interrupted": None,
    }
    path = tmp_path / "performance.json"
    path.write_text(json.dumps(old, indent=2))
    record = read_record(path)
    assert record.status is RunStatus.INVALID and not record.ok
    assert record.scenario is Scenario.OFFLINE and record.mode is Mode.PERFORMANCE
    assert isinstance(record.loadgen, LoadGenResult) and record.loadgen == real_result
    assert record.started == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert record.finished is not None and record.finished.utcoffset() == dt.timedelta(0)
    assert RUN_ID.match(record.run_id)  # none was saved: a fresh one
    # written again, it reads the same
    write_record(record, path)
    assert read_record(path) == record


def test_times_are_utc_and_timezone_aware() -> None:
    naive = _record(None, started="2025-01-02T03:04:05")  # taken to be UTC
    assert naive.started == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    local = _record(None, started="2025-01-02T05:04:05+02:00")
    assert local.started == naive.started and local.started.tzinfo is UTC
    fresh = _record(None)
    assert fresh.started.tzinfo is not None
    assert abs(dt.datetime.now(UTC) - fresh.started) < dt.timedelta(minutes=1)


def test_statuses_and_scenarios_are_the_vocabulary_enums() -> None:
    record = _record(None, scenario="SingleStream", mode="accuracy")
    assert record.status is RunStatus.FAILED is STATUS_FAILED  # the default: not completed
    assert record.scenario is Scenario.SINGLE_STREAM and record.mode is Mode.ACCURACY
    # str enums: the plain words still compare equal (old callers keep working)
    assert record.scenario == "SingleStream" and STATUS_VALID == "VALID"
    record.status = "VALID"  # an assignment is validated: the record stays typed
    assert record.status is RunStatus.VALID and record.ok
    with pytest.raises(ValidationError):
        record.status = "PASSED"
    with pytest.raises(ValidationError):
        _record(None, scenario="Interactive")


@needs_shared
def test_a_loadgen_dict_assigned_to_a_record_is_parsed(real_result: LoadGenResult) -> None:
    record = _record(None)
    record.loadgen = real_result.model_dump(mode="json")
    assert isinstance(record.loadgen, LoadGenResult) and record.loadgen == real_result


def test_run_ids_are_fresh_sortable_and_shared_when_given(tmp_path: Path) -> None:
    first, second = _record(None), _record(None)
    assert RUN_ID.match(first.run_id) and RUN_ID.match(second.run_id)
    assert first.run_id != second.run_id
    earlier = new_run_id(dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC))
    later = new_run_id(dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC))
    assert earlier.startswith("20241231T235959Z-") and earlier < later
    run_id = new_run_id()
    accuracy = _record(None, run_id=run_id, mode=Mode.ACCURACY,
                       accuracy=AccuracyRecord(metric="top1", value=76.5, text="76.5", total=4))
    performance = _record(None, run_id=run_id)
    compliance = ComplianceRecord(run_id=run_id, test="TEST04", scenario=Scenario.OFFLINE)
    for name, item in (("a", accuracy), ("p", performance)):
        write_record(item, tmp_path / f"{name}.json")
    assert {read_record(tmp_path / f"{n}.json").run_id for n in "ap"} == {run_id}
    assert ComplianceRecord.model_validate_json(compliance.model_dump_json()).run_id == run_id


def test_an_unknown_field_in_a_record_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    data = json.loads(_record(None).model_dump_json())
    data["colour"] = "blue"
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=r"bad\.json.*colour"):
        read_record(path)


# ------------------------------------------------------------------- compliance, findings


def test_compliance_records_old_and_new() -> None:
    old = {"test": "TEST01", "scenario": "Offline", "status": "INDICATIVE",
           "reasons": ["band"], "accuracy_check": None, "performance_check": "TEST FAIL\n",
           "run_dir": "/r/.compliance/TEST01", "test_dir": "/r/TEST01"}
    record = ComplianceRecord.model_validate(old)
    assert record.status is ComplianceStatus.INDICATIVE is INDICATIVE
    assert record.status in OK_STATUSES and record.scenario is Scenario.OFFLINE
    assert RUN_ID.match(record.run_id)
    record.status = "FAIL"
    assert record.status is ComplianceStatus.FAIL and record.status not in OK_STATUSES
    saved = json.loads(record.model_dump_json())
    assert (saved["status"], saved["scenario"]) == ("FAIL", "Offline")


def test_finding_severity_is_the_enum_and_serialises_as_the_word() -> None:
    found = Findings(result="closed/x")
    found.error("a.rule", "broken")
    found.warning("b.rule", "shaky")
    found.add("warning", "c.rule", "also shaky")  # the plain word is converted
    assert [f.severity for f in found.items] == [Severity.ERROR, Severity.WARNING,
                                                 Severity.WARNING]
    assert found.errors == found.items[:1]
    assert json.loads(json.dumps(found.items[0].__dict__))["severity"] == "error"
    with pytest.raises(ValueError):
        Finding("fatal", "d.rule", "no such severity")


# ----------------------------------------------------------------------------- Provenance


def _provenance(**fields: object) -> Provenance:
    base: dict[str, object] = dict(
        command="mlperf-pilot run --model resnet50-synthetic", run_id=new_run_id(),
        started=dt.datetime(2025, 6, 5, 10, 15, tzinfo=UTC), system="onnxruntime-cpu",
        model_path=Path("/cache/model.onnx"), model_source="built", dataset_root=Path("/d"),
        dataset_source="synthetic", dataset_count=24, preprocessed=Path("/cache/prep"),
        preprocessing_library="pillow", backend="onnxruntime", backend_version="1.21.1",
        device_in_use="cpu", max_batch_size=8,
        warmup_estimates=WarmupEstimates(latency_ms=3.5, batch_latency_ms=20.0),
        workers=1, threads=2, versions=Versions.collect(),
    )
    base.update(fields)
    return Provenance.model_validate(base)


def test_provenance_round_trips_through_run_spec_json(tmp_path: Path) -> None:
    spec = RunSpec.model_validate({"model": "resnet50-synthetic",
                                   "sut": {"kind": "local", "model_format": "onnx"}})
    resolved = _provenance()
    path = tmp_path / "run_spec.json"
    write_run_spec(path, spec, resolved)
    saved = read_run_spec(path)
    assert saved.resolved == resolved
    assert saved.spec == spec.model_dump(mode="json")
    assert saved.model_format == "onnx" and saved.execution_mode == "test"
    assert saved.resolved.versions is not None
    assert saved.resolved.versions.python == resolved.versions.python  # type: ignore[union-attr]
    raw = json.loads(path.read_text())["resolved"]
    assert raw["model_path"] == "/cache/model.onnx" and raw["sut_kind"] == "local"
    assert raw["started"] == "2025-06-05T10:15:00+00:00"
    assert raw["warmup_estimates"] == {"latency_ms": 3.5, "batch_latency_ms": 20.0}


def test_an_old_run_spec_json_still_reads(tmp_path: Path) -> None:
    old = {  # as the runner wrote it before Provenance (flat spec keys, no ids/versions)
        "spec": {"model": "resnet50", "backend": "onnxruntime", "model_format": "onnx-fp32",
                 "execution_mode": "valid"},
        "resolved": {
            "command": "mlperf-pilot run --model resnet50", "model_path": "/m/resnet50.onnx",
            "model_source": "cached https://example.org/resnet50.onnx",
            "dataset_root": "/d/imagenet", "dataset_source": "ILSVRC2012 val",
            "dataset_count": 500, "preprocessed": "/c/prep", "preprocessing_library": "opencv",
            "backend": "onnxruntime", "backend_version": "1.20.0", "device_in_use": "cpu",
            "max_batch_size": 8,
            "warmup_estimates": {"latency_ms": 4.2, "batch_latency_ms": 30.1, "gone": 1},
            "workers": 2, "threads": 1,
            "retired_key": "a key this version no longer knows",
        },
    }
    path = tmp_path / "run_spec.json"
    path.write_text(json.dumps(old))
    saved = read_run_spec(path)
    resolved = saved.resolved
    assert resolved.command == "mlperf-pilot run --model resnet50"
    assert resolved.model_path == Path("/m/resnet50.onnx") and resolved.dataset_count == 500
    assert resolved.warmup_estimates == WarmupEstimates(latency_ms=4.2, batch_latency_ms=30.1)
    assert (resolved.workers, resolved.threads, resolved.sut_kind) == (2, 1, "local")
    assert resolved.run_id is None and resolved.started is None and resolved.versions is None
    assert saved.model_format == "onnx-fp32" and saved.execution_mode == "valid"


def test_provenance_built_in_code_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="comand"):
        Provenance.model_validate({"comand": "mlperf-pilot run"})
    with pytest.raises(ValidationError, match="latency"):
        WarmupEstimates.model_validate({"latency": 1.0})


def test_a_run_spec_that_is_not_one_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "run_spec.json"
    path.write_text('{"spec": {}, "resolved": ')
    with pytest.raises(StoreError, match=r"run_spec\.json"):
        read_run_spec(path)
    path.write_text('{"spec": {}, "resolved": {"dataset_count": "many"}}')
    with pytest.raises(StoreError, match="dataset_count"):
        read_run_spec(path)
    assert RunSpecFile().resolved == Provenance()  # a folder without one


def test_versions_read_the_old_versions_json(tmp_path: Path) -> None:
    path = tmp_path / "versions.json"
    path.write_text(json.dumps(collect_versions(), indent=2))  # as runs wrote it
    versions = read_versions(path)
    assert versions.cpu_count and "pydantic" in versions.packages
    write_versions(tmp_path / "again.json", versions)
    assert read_versions(tmp_path / "again.json") == versions

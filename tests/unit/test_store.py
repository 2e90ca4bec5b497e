"""The results store (results.store): its schema and version table, the migration
from version 1, round trips of real records, two processes writing at once, files
that are not a store, imports of a real submission tree, prune."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from mlperf_pilot.errors import ConfigError, StoreError
from mlperf_pilot.loadgen.logs import read_result
from mlperf_pilot.results.importer import import_tree
from mlperf_pilot.results.prune import parse_age, prune
from mlperf_pilot.results.records import AccuracyRecord, RunRecord
from mlperf_pilot.results.store import (
    STORE_ENV,
    ResultsStore,
    default_test_id,
    open_store,
    store_path,
)
from mlperf_pilot.results.store_schema import SCHEMA_VERSION, V1_DDL, V2_COLUMNS
from mlperf_pilot.vocab import ExecutionMode, RunStatus

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
TREE = SHARED / "mlc-test-submission-v5.0"
RESULTS = TREE / "open" / "MLCommons" / "results"
ORT = "gh_ubuntu-latest_x86-reference-cpu-onnxruntime_v1.21.1-default_config"
ORT_OFFLINE = RESULTS / ORT / "resnet50" / "offline"

needs_tree = pytest.mark.skipif(not TREE.is_dir(), reason=f"{TREE} is not here")


def _record(log_dir: Path, **update: object) -> RunRecord:
    """A record of a real LoadGen performance test (the submission tree's logs)."""
    result = read_result(ORT_OFFLINE / "performance" / "run_1")
    values: dict[str, object] = dict(
        model="resnet50", mlperf_model="resnet50", backend="onnxruntime",
        backend_version="1.21.1", device="cpu", device_in_use="CPUExecutionProvider",
        system="ci-box", scenario=result.scenario, mode="performance",
        status=RunStatus.VALID, metric_name=result.metric_name,
        metric_value=result.metric_value, metric_unit=result.metric_unit,
        log_dir=str(log_dir), loadgen=result, execution_mode=ExecutionMode.TEST,
        sut_kind="local", sut_details={"max_batch_size": 8, "workers": 1},
        reasons=["a reason"], finished=dt.datetime(2025, 6, 5, 10, 16, tzinfo=dt.timezone.utc),
        started=dt.datetime(2025, 6, 5, 10, 15, tzinfo=dt.timezone.utc), duration_s=60.5,
    )
    values.update(update)
    return RunRecord.model_validate(values)


# ------------------------------------------------------------------------- the schema


def test_a_new_store_has_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "store.sqlite"
    with open_store(path) as store:
        assert store.path == path and store.schema_version == SCHEMA_VERSION == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tests)")}
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(tests)")}
        version = conn.execute("SELECT version FROM schema_version").fetchall()
    assert set(V2_COLUMNS) <= columns
    assert {"test_id", "run_id", "kind", "started", "finished", "system", "model", "backend",
            "device", "scenario", "mode", "status", "metric_value", "log_dir",
            "settings_json", "provenance_json", "record_json"} <= columns
    assert {"ix_tests_run_id", "ix_tests_model_scenario", "ix_tests_status",
            "ix_tests_started"} <= indexes
    assert version == [(2,)]


def test_where_the_store_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store_path(results_dir=tmp_path) == tmp_path / "results.sqlite"
    assert store_path(tmp_path / "x.db", results_dir=tmp_path) == tmp_path / "x.db"
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env.sqlite"))
    assert store_path(results_dir=tmp_path) == tmp_path / "env.sqlite"
    assert store_path(tmp_path / "x.db") == tmp_path / "x.db"  # the flag wins


def test_importing_the_package_does_not_import_sqlalchemy() -> None:
    import subprocess
    import sys

    code = ("import sys, mlperf_pilot, mlperf_pilot.cli.main, mlperf_pilot.results.store;"
            "print('sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------- round trips


@needs_tree
def test_a_real_record_round_trips_with_its_columns(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        (logs / name).write_bytes((ORT_OFFLINE / "performance" / "run_1" / name).read_bytes())
    record = _record(logs)
    store = open_store(tmp_path / "s.sqlite")
    test_id = store.add(record, provenance={"command": "mlperf-pilot run", "host":
                                            {"name": "box"}})
    assert test_id == f"{record.run_id}-Offline-performance" == default_test_id(record)
    stored = store.get(test_id)
    assert stored.record == record and stored.kind == "run"
    assert stored.record.model_dump_json() == record.model_dump_json()
    assert stored.provenance["command"] == "mlperf-pilot run"
    assert stored.provenance["log_paths"] == {
        "summary": str(logs / "mlperf_log_summary.txt"),
        "detail": str(logs / "mlperf_log_detail.txt")}
    row = next(r for r in store.rows() if r["test_id"] == test_id)
    assert record.loadgen is not None
    assert row["p90_ns"] == record.loadgen.latency_percentiles_ns["90.00"]
    assert row["p99_ns"] == record.loadgen.latency_percentiles_ns["99.00"]
    assert row["metric_value"] == record.metric_value and row["metric_unit"] == "Samples/s"
    assert (row["status"], row["execution_mode"], row["sut_kind"]) == ("VALID", "test",
                                                                       "local")
    assert json.loads(row["reasons_json"]) == ["a reason"]
    assert (row["command"], row["host"]) == ("mlperf-pilot run", "box")
    assert row["started"] == "2025-06-05T10:15:00+00:00"
    # the same test again gets a free id; an id asked for must be free
    assert store.add(record) == f"{test_id}-2"
    with pytest.raises(StoreError, match="already"):
        store.add(record, test_id=test_id)


@needs_tree
def test_select_filters_and_get_by_prefix(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    day = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    ids = []
    for n in range(4):
        record = _record(tmp_path, started=day + dt.timedelta(days=n), run_id=f"r{n}",
                         status=RunStatus.FAILED if n == 2 else RunStatus.VALID,
                         accuracy=AccuracyRecord(metric="top1", value=76.0, text="x",
                                                 total=500) if n == 3 else None)
        ids.append(store.add(record, kind="bench" if n == 1 else "run"))
    assert [t.test_id for t in store.select()] == ids  # oldest first
    assert [t.test_id for t in store.select(last=2)] == ids[2:]
    assert [t.test_id for t in store.select(status="failed")] == [ids[2]]
    assert [t.test_id for t in store.select(kind="bench")] == [ids[1]]
    assert [t.test_id for t in store.select(since=day + dt.timedelta(days=2))] == ids[2:]
    assert [t.test_id for t in store.select(scenario="offline", model="resnet50")] == ids
    assert store.select(model="bert") == []
    assert [t.test_id for t in store.select(ids=[ids[3], "r0"])] == [ids[3], ids[0]]
    assert store.get("r3").record.accuracy is not None
    with pytest.raises(StoreError) as unknown:
        store.get("nope")
    assert "nope" in unknown.value.message and "results list" in (unknown.value.hint or "")
    with pytest.raises(StoreError, match="names 4 tests"):
        store.get("r")


# ------------------------------------------------------------------ two writers at once


def _writer(path: str, name: str, count: int, go: object) -> None:
    go.wait(30)  # type: ignore[attr-defined]
    store = open_store(Path(path))
    for n in range(count):
        record = RunRecord(model="m", mlperf_model="m", backend="b", backend_version=None,
                           device="cpu", device_in_use="cpu", system=name,
                           scenario="Offline", mode="performance", log_dir=path,
                           run_id=f"{name}-{n}")
        store.add(record)
    store.close()


def test_two_processes_writing_at_once_both_land(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    open_store(path).close()
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(str(path), name, 40, go))
               for name in ("alpha", "beta")]
    for process in writers:
        process.start()
    go.set()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0
    rows = open_store(path).rows()
    assert len(rows) == 80
    assert {r["system"] for r in rows} == {"alpha", "beta"}


# --------------------------------------------------------------- migration, bad files


def _v1_store(path: Path, record: RunRecord) -> None:
    """A store as version 1 made it: its DDL verbatim and one row."""
    with sqlite3.connect(path) as conn:
        for statement in V1_DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO tests (test_id, run_id, kind, started, system, model, backend, "
            "device, scenario, mode, status, metric_name, metric_value, metric_unit, "
            "log_dir, settings_json, provenance_json, record_json) VALUES "
            "(?, ?, 'run', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (default_test_id(record), record.run_id, record.started.isoformat(), record.system,
             record.model, record.backend, record.device, record.scenario.value,
             record.mode.value, record.status.value, record.metric_name,
             record.metric_value, record.metric_unit, record.log_dir,
             json.dumps({"model": "resnet50"}),
             json.dumps({"command": "mlperf-pilot run --model resnet50"}),
             record.model_dump_json()))
    conn.close()


@needs_tree
def test_a_version_1_store_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    record = _record(tmp_path)
    _v1_store(path, record)
    store = open_store(path)
    assert store.schema_version == 2
    stored = store.get(default_test_id(record))
    assert stored.record == record and stored.settings == {"model": "resnet50"}
    row = store.rows()[0]
    assert record.loadgen is not None
    assert row["p50_ns"] == record.loadgen.latency_percentiles_ns["50.00"]
    assert row["command"] == "mlperf-pilot run --model resnet50"
    assert (row["sut_kind"], row["execution_mode"]) == ("local", "test")
    assert json.loads(row["reasons_json"]) == ["a reason"]
    # the upgraded store takes new tests; opening it again changes nothing
    store.add(record)
    assert len(open_store(path).rows()) == 2
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(tests)")}
    assert "ix_tests_started" in indexes


def test_a_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 9")
    conn.close()
    with pytest.raises(StoreError) as caught:
        open_store(path)
    assert "schema version 9" in caught.value.message
    assert "upgrade mlperf-pilot" in (caught.value.hint or "")


def test_files_that_are_not_a_store_are_a_store_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError) as caught:
        open_store(text)
    assert "is not a SQLite database" in caught.value.message and str(text) in \
        caught.value.message
    assert "--store" in (caught.value.hint or "")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="another program"):
        open_store(other)
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path)
    assert text.read_text().startswith("these are my notes")  # left as it was


def test_a_corrupt_store_is_one_clean_error_from_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(os.urandom(4096))
    for argv in (["results", "import", tmp_path, "--store", bad],
                 ["results", "prune", "--status", "FAILED", "--store", bad]):
        result = cli(*argv)
        assert result.code == 1, result.text
        assert result.errors() == [f"error: results store {bad} is not a SQLite database "
                                   "(file is not a database)"]
        assert result.hint_line().startswith("hint: move the file away")
        assert "Traceback" not in result.text


# --------------------------------------------------------------------------- import


@needs_tree
def test_importing_a_submission_tree_of_another_tool(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    report = import_tree(store, TREE)
    expected = sorted({p.parent for p in TREE.rglob("mlperf_log_detail.txt")})
    assert len(report.added) == len(expected) == 78 and not report.problems
    assert sorted(Path(logs) for _, logs in report.added) == expected
    tests = store.select(kind="import")
    assert len(tests) == 78
    perf = next(t for t in tests if t.record.log_dir == str(ORT_OFFLINE / "performance"
                                                              / "run_1"))
    summary = (ORT_OFFLINE / "performance" / "run_1" / "mlperf_log_summary.txt").read_text()
    assert (perf.record.system, perf.record.model, perf.record.scenario.value,
            perf.record.mode.value) == (ORT, "resnet50", "Offline", "performance")
    assert (perf.record.backend, perf.record.backend_version, perf.record.device) == (
        "onnxruntime", "1.21.1", "cpu")
    assert f"Samples per second: {perf.record.metric_value:g}" in summary
    assert perf.record.status is RunStatus.VALID and "Result is : VALID" in summary
    assert perf.record.loadgen is not None and perf.record.loadgen.latency_percentiles_ns
    measured = TREE / "open" / "MLCommons" / "measurements" / ORT / "resnet50" / "offline"
    assert perf.settings["user_conf"] == (measured / "user.conf").read_text()
    acc = next(t for t in tests if t.record.log_dir == str(ORT_OFFLINE / "accuracy"))
    assert acc.record.accuracy is not None
    assert acc.record.accuracy.text == (ORT_OFFLINE / "accuracy" / "accuracy.txt"
                                        ).read_text().splitlines()[0]
    # idempotent: the same tree again adds nothing
    again = import_tree(store, TREE)
    assert not again.added and len(again.known) == 78


# ---------------------------------------------------------------------------- prune


@needs_tree
def test_prune_removes_rows_and_their_run_folders_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    day = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    elsewhere = tmp_path / "imported-logs"
    elsewhere.mkdir()
    ids = []
    for n in range(5):
        record = _record(elsewhere, run_id=f"r{n}", started=day + dt.timedelta(days=n),
                         status=RunStatus.FAILED if n == 1 else RunStatus.VALID)
        test_id = default_test_id(record)
        folder = tmp_path / "runs" / test_id
        folder.mkdir(parents=True)
        (folder / "mlperf_log_detail.txt").write_text("x")
        # the last test's logs are somewhere else (an import): they are never deleted
        where = elsewhere if n == 4 else folder
        ids.append(store.add(record.model_copy(update={"log_dir": str(where)}),
                             test_id=test_id))
    with pytest.raises(ConfigError, match="needs a criterion"):
        prune(store)
    planned = prune(store, status="failed", dry_run=True)
    assert [p.test_id for p in planned] == [ids[1]] and (tmp_path / "runs" / ids[1]).is_dir()
    assert len(store.rows()) == 5
    gone = prune(store, status="FAILED")
    assert [p.test_id for p in gone] == [ids[1]] and not (tmp_path / "runs" / ids[1]).exists()
    gone = prune(store, keep_last=2)  # of the one configuration: the two newest stay
    assert [p.test_id for p in gone] == [ids[0], ids[2]]
    assert [r["test_id"] for r in store.rows()] == ids[3:]
    gone = prune(store, older_than=day + dt.timedelta(days=10))
    assert [p.test_id for p in gone] == ids[3:] and gone[1].folder is None
    assert elsewhere.is_dir() and not store.rows()


def test_ages_and_dates() -> None:
    now = dt.datetime(2025, 6, 10, tzinfo=dt.timezone.utc)
    assert parse_age("30d", now) == now - dt.timedelta(days=30)
    assert parse_age("12h", now) == now - dt.timedelta(hours=12)
    assert parse_age("2w", now) == now - dt.timedelta(weeks=2)
    assert parse_age("2025-06-01", now) == dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(ConfigError, match="neither an age nor a date"):
        parse_age("last tuesday", now)


def test_store_class_is_what_open_store_returns(tmp_path: Path) -> None:
    assert isinstance(open_store(results_dir=tmp_path), ResultsStore)
    assert (tmp_path / "results.sqlite").is_file()

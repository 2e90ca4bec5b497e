"""The results store's schema, its version table and the migrations between versions.

The store is one SQLite file. ``schema_version`` holds one row: the version of the
schema the file has. :data:`SCHEMA_VERSION` is the version this code writes; a file of
an older version is upgraded in place, step by step (:data:`MIGRATIONS`), in one
transaction, when it is opened; a file of a newer version is refused (an older tool
cannot know what the newer columns mean).

- **Version 1** (the first store): one row per test with its identity, headline metric,
  log folder and the whole record as JSON (:data:`V1_DDL`, kept verbatim: the
  migration test builds a version-1 file from it).
- **Version 2**: the columns a comparison filters and sorts on without parsing JSON
  (SUT kind, execution mode, reasons, latency percentiles, accuracy, command, versions,
  host, the log files), back-filled from each row's record and provenance, and indexes
  on run, model/scenario, status and start time.

SQLAlchemy is imported by the functions that need it: importing this module costs
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 2

# The DDL version 1 of the store created (verbatim; never change it: it is history).
V1_DDL: tuple[str, ...] = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE tests (
        test_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        started TEXT NOT NULL,
        finished TEXT,
        system TEXT NOT NULL,
        model TEXT NOT NULL,
        backend TEXT,
        device TEXT,
        scenario TEXT NOT NULL,
        mode TEXT NOT NULL,
        status TEXT NOT NULL,
        metric_name TEXT,
        metric_value REAL,
        metric_unit TEXT,
        log_dir TEXT NOT NULL,
        settings_json TEXT NOT NULL DEFAULT '{}',
        provenance_json TEXT NOT NULL DEFAULT '{}',
        record_json TEXT NOT NULL
    )""",
    "INSERT INTO schema_version (version) VALUES (1)",
)

# The latency percentiles a row has as columns (LoadGen's keys -> column names); the
# record keeps every percentile LoadGen logged.
PERCENTILE_COLUMNS: dict[str, str] = {
    "50.00": "p50_ns", "90.00": "p90_ns", "95.00": "p95_ns", "97.00": "p97_ns",
    "99.00": "p99_ns", "99.90": "p999_ns",
}

# Columns version 2 adds to version 1's ``tests`` (name -> SQLite type).
V2_COLUMNS: dict[str, str] = {
    "mlperf_model": "TEXT", "backend_version": "TEXT", "sut_kind": "TEXT",
    "device_in_use": "TEXT", "execution_mode": "TEXT", "reasons_json": "TEXT",
    **{column: "REAL" for column in PERCENTILE_COLUMNS.values()},
    "accuracy_metric": "TEXT", "accuracy_value": "REAL", "command": "TEXT",
    "tool_version": "TEXT", "host": "TEXT", "log_paths_json": "TEXT", "recorded": "TEXT",
}

V2_INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS ix_tests_run_id ON tests (run_id)",
    "CREATE INDEX IF NOT EXISTS ix_tests_model_scenario ON tests (model, scenario)",
    "CREATE INDEX IF NOT EXISTS ix_tests_status ON tests (status)",
    "CREATE INDEX IF NOT EXISTS ix_tests_started ON tests (started)",
)


def tests_table(metadata: Any) -> Any:
    """The ``tests`` table of the current schema (version 2), on ``metadata``."""
    from sqlalchemy import Column, Float, Index, String, Table, Text

    def text(name: str, **kw: Any) -> Column[Any]:
        return Column(name, Text, **kw)

    return Table(
        "tests", metadata,
        Column("test_id", String, primary_key=True),
        text("run_id", nullable=False), text("kind", nullable=False),
        text("started", nullable=False), text("finished"),
        text("system", nullable=False), text("model", nullable=False),
        text("backend"), text("device"),
        text("scenario", nullable=False), text("mode", nullable=False),
        text("status", nullable=False),
        text("metric_name"), Column("metric_value", Float), text("metric_unit"),
        text("log_dir", nullable=False),
        text("settings_json", nullable=False, server_default="{}"),
        text("provenance_json", nullable=False, server_default="{}"),
        text("record_json", nullable=False),
        # version 2
        text("mlperf_model"), text("backend_version"), text("sut_kind"),
        text("device_in_use"), text("execution_mode"), text("reasons_json"),
        *(Column(column, Float) for column in PERCENTILE_COLUMNS.values()),
        text("accuracy_metric"), Column("accuracy_value", Float),
        text("command"), text("tool_version"), text("host"), text("log_paths_json"),
        text("recorded"),
        Index("ix_tests_run_id", "run_id"),
        Index("ix_tests_model_scenario", "model", "scenario"),
        Index("ix_tests_status", "status"),
        Index("ix_tests_started", "started"),
    )


def version_table(metadata: Any) -> Any:
    from sqlalchemy import Column, Integer, Table

    return Table("schema_version", metadata, Column("version", Integer, nullable=False))


def v2_columns(record: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """The columns version 2 adds, from a record (its JSON dump) and its provenance."""
    loadgen = record.get("loadgen") or {}
    percentiles = loadgen.get("latency_percentiles_ns") or {}
    accuracy = record.get("accuracy") or {}
    versions = provenance.get("versions") or {}
    packages = versions.get("packages") or {} if isinstance(versions, dict) else {}
    return {
        "mlperf_model": record.get("mlperf_model"),
        "backend_version": record.get("backend_version"),
        "sut_kind": record.get("sut_kind"),
        "device_in_use": record.get("device_in_use"),
        "execution_mode": record.get("execution_mode"),
        "reasons_json": json.dumps(record.get("reasons") or []),
        **{column: _number(percentiles.get(key)) for key, column in PERCENTILE_COLUMNS.items()},
        "accuracy_metric": accuracy.get("metric"),
        "accuracy_value": _number(accuracy.get("value")),
        "command": provenance.get("command"),
        "tool_version": provenance.get("tool_version") or packages.get("mlperf-pilot"),
        "host": _host_name(provenance.get("host")),
        "log_paths_json": json.dumps(provenance.get("log_paths") or {}),
    }


def _host_name(host: Any) -> str | None:
    if isinstance(host, dict):
        return str(host.get("name")) if host.get("name") else None
    return str(host) if host else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _v1_to_v2(conn: Any) -> None:
    """Add version 2's columns and indexes, and fill them from each row's JSON."""
    from sqlalchemy import text

    for column, kind in V2_COLUMNS.items():
        conn.exec_driver_sql(f"ALTER TABLE tests ADD COLUMN {column} {kind}")
    rows = conn.execute(text("SELECT test_id, record_json, provenance_json FROM tests")).all()
    for test_id, record_json, provenance_json in rows:
        try:
            record = json.loads(record_json)
            provenance = json.loads(provenance_json or "{}")
        except ValueError:
            continue  # a row whose JSON is damaged keeps its version-1 columns
        values = v2_columns(record if isinstance(record, dict) else {},
                            provenance if isinstance(provenance, dict) else {})
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        conn.execute(text(f"UPDATE tests SET {assignments} WHERE test_id = :test_id"),
                     {**values, "test_id": test_id})
    for statement in V2_INDEXES:
        conn.exec_driver_sql(statement)


# from-version -> the step that upgrades a store of that version by one version
MIGRATIONS: dict[int, Callable[[Any], None]] = {1: _v1_to_v2}


__all__ = ["MIGRATIONS", "PERCENTILE_COLUMNS", "SCHEMA_VERSION", "V1_DDL", "V2_COLUMNS",
           "tests_table", "v2_columns", "version_table"]

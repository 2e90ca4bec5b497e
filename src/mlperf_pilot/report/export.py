"""`results export --format csv|json|parquet`: stored tests as a file.

csv and parquet hold one flat row per test (:data:`report.tables.EXPORT_COLUMNS`: the
identity, status, headline metric, latency percentiles in ns, accuracy, and the settings
and versions as JSON text); json holds each test whole (record, settings, provenance,
as `results show --json`). parquet needs pyarrow (the ``parquet`` extra), imported only
here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import StoreError
from mlperf_pilot.extras import import_extra
from mlperf_pilot.report.tables import EXPORT_COLUMNS, StoredTestLike, export_rows, stored_json

FORMATS = ("csv", "json", "parquet")
TEXT_FORMATS = ("csv", "json")  # what may go to stdout


def csv_text(tests: Sequence[StoredTestLike]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in export_rows(tests):
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def json_text(tests: Sequence[StoredTestLike]) -> str:
    return json.dumps({"tests": [stored_json(test) for test in tests]}, indent=2) + "\n"


def export_text(tests: Sequence[StoredTestLike], fmt: str) -> str:
    """csv or json as text (for stdout or a file)."""
    if fmt == "csv":
        return csv_text(tests)
    if fmt == "json":
        return json_text(tests)
    raise ValueError(f"not a text format: {fmt}")


def _pyarrow() -> Any:
    return import_extra("pyarrow", "pyarrow.parquet", package="pyarrow", extra="parquet",
                        purpose="results export --format parquet")


def parquet_table(tests: Sequence[StoredTestLike]) -> Any:
    """The tests as a pyarrow Table with a fixed schema (one column per EXPORT_COLUMNS)."""
    pa = _pyarrow()
    rows = export_rows(tests)
    types = {"metric_value": pa.float64(), "accuracy_value": pa.float64(),
             "accuracy_target": pa.float64(), "mean_latency_ns": pa.float64(),
             "loadgen_duration_ms": pa.float64(), "duration_s": pa.float64(),
             "query_count": pa.int64(), "samples_failed": pa.int64(),
             "submittable": pa.bool_()}
    fields = [pa.field(column, types.get(column, pa.float64() if column.endswith("_ns")
                                          else pa.string())) for column in EXPORT_COLUMNS]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


def write_export(tests: Sequence[StoredTestLike], fmt: str, path: Path) -> Path:
    """Write the tests to ``path`` in ``fmt``; StoreError when it cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            pa = _pyarrow()
            pa.parquet.write_table(parquet_table(tests), str(path))
        else:
            path.write_text(export_text(tests, fmt), encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="choose another --out file") from exc
    return path


__all__ = ["FORMATS", "TEXT_FORMATS", "csv_text", "export_text", "json_text", "parquet_table",
           "write_export"]

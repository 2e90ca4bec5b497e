"""The rows of `results list`, the view of `results show` and the rows of `results
export`: pure functions of stored tests, typed data the CLI renders (no printing here).

A *stored test* is what the results store gives back (``results.store.StoredTest``):
its ``test_id``, ``kind``, the typed ``record`` (a :class:`RunRecord`), the resolved
``settings`` and the ``provenance`` (command, versions, host). These functions read
only those attributes (:class:`StoredTestLike`), so they take anything shaped so.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.vocab import Scenario

# LoadGen's percentile keys the tables show, in this order (the record keeps them all)
SHOWN_PERCENTILES: tuple[str, ...] = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")
# lower is better for the latency scenarios' headline metric (ms), higher for throughput
LATENCY_SCENARIOS = frozenset({Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM})


class StoredTestLike(Protocol):
    """What the report's functions read of a stored test."""

    @property
    def test_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def record(self) -> RunRecord: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def provenance(self) -> Mapping[str, Any]: ...


def lower_is_better(record: RunRecord) -> bool:
    """The headline metric of SingleStream/MultiStream is a latency (lower is better);
    Offline's and Server's a throughput (higher is better)."""
    return record.scenario in LATENCY_SCENARIOS


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"sut": {"device": "cpu"}}`` →
    ``{"sut.device": "cpu"}``); lists and scalars are values; keys sorted."""
    flat: dict[str, Any] = {}
    for key in sorted(data, key=str):
        value = data[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def percentiles_of(record: RunRecord) -> dict[str, float]:
    """The latency percentiles LoadGen logged (ns, by LoadGen's key ``"90.00"``), for
    MultiStream the per-query ones; empty for a test without a parsed result."""
    if record.loadgen is None:
        return {}
    result = record.loadgen
    found = result.query_latency_percentiles_ns if record.scenario is Scenario.MULTI_STREAM \
        and result.query_latency_percentiles_ns else result.latency_percentiles_ns
    return dict(sorted(found.items(), key=lambda item: float(item[0])))


def percentile_label(key: str) -> str:
    """``"90.00"`` → ``"p90"``, ``"99.90"`` → ``"p99.9"``."""
    return f"p{float(key):g}"


# ------------------------------------------------------------------------------- list


@dataclass(frozen=True)
class ListRow:
    """One line of `results list`."""

    test_id: str
    run_id: str
    kind: str
    started: _dt.datetime
    system: str
    model: str
    sut: str  # the SUT kind and backend: "local/onnxruntime", "oip/onnxruntime"
    device: str
    scenario: str
    mode: str
    status: str
    metric_name: str | None
    metric_value: float | None
    metric_unit: str | None
    accuracy: float | None  # %
    accuracy_metric: str | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = self.started.isoformat()
        return data


# the test id says the run (its UTC start time first), the scenario and the mode
LIST_COLUMNS: tuple[str, ...] = ("Test", "Kind", "System", "Model", "SUT", "Status",
                                 "Result", "Accuracy")


def sut_label(record: RunRecord) -> str:
    kind = record.sut_kind or "local"
    return f"{kind}/{record.backend}" if record.backend else kind


def list_row(test: StoredTestLike) -> ListRow:
    record = test.record
    return ListRow(
        test_id=test.test_id, run_id=record.run_id, kind=test.kind,
        started=record.started, system=record.system, model=record.model,
        sut=sut_label(record), device=record.device, scenario=record.scenario.value,
        mode=record.mode.value, status=record.status.value,
        metric_name=record.metric_name, metric_value=record.metric_value,
        metric_unit=record.metric_unit,
        accuracy=record.accuracy.value if record.accuracy else None,
        accuracy_metric=record.accuracy.metric if record.accuracy else None,
    )


def list_rows(tests: Sequence[StoredTestLike]) -> list[ListRow]:
    return [list_row(test) for test in tests]


def number_text(value: float | None, unit: str | None = None) -> str:
    """``10,328.4 Samples/s``, ``0.1234 ms``; ``-`` for no value."""
    if value is None:
        return "-"
    shown = f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return f"{shown} {unit or ''}".strip()


def list_cells(row: ListRow) -> list[str]:
    """The row's cells as LIST_COLUMNS shows them."""
    accuracy = f"{row.accuracy:.3f}% {row.accuracy_metric}" if row.accuracy is not None \
        else "-"
    return [row.test_id, row.kind, row.system, row.model, f"{row.sut} {row.device}",
            row.status, number_text(row.metric_value, row.metric_unit), accuracy]


# ------------------------------------------------------------------------------- show


@dataclass(frozen=True)
class Section:
    """A titled list of (field, value) pairs of `results show`."""

    title: str
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ShowView:
    """Everything `results show` says about one test, section by section."""

    test_id: str
    sections: tuple[Section, ...]
    reasons: tuple[str, ...] = field(default=())


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "-"
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    return str(getattr(value, "value", value))


def show_view(test: StoredTestLike) -> ShowView:
    record = test.record
    identity = (
        ("test", test.test_id), ("run", record.run_id), ("kind", test.kind),
        ("started", _text(record.started)), ("finished", _text(record.finished)),
        ("duration", f"{record.duration_s:.1f} s" if record.duration_s is not None else "-"),
        ("system", record.system), ("model", f"{record.model} ({record.mlperf_model})"),
        ("SUT", sut_label(record)),
        ("backend", f"{record.backend} {record.backend_version or ''}".strip()),
        ("device", f"{record.device} ({record.device_in_use})"),
        ("scenario", record.scenario.value), ("mode", record.mode.value),
        ("execution mode", _text(record.execution_mode)),
    )
    verdict = [("status", record.status.value),
               ("submittable", "yes" if record.submittable else "no")]
    if record.not_submittable:
        verdict.append(("not submittable", "; ".join(record.not_submittable)))
    if record.samples_failed:
        verdict.append(("samples failed", str(record.samples_failed)))
    if record.interrupted:
        verdict.append(("interrupted", record.interrupted))
    result = [("metric", record.metric_name or "-"),
              ("value", number_text(record.metric_value, record.metric_unit))]
    loadgen = record.loadgen
    if loadgen is not None:
        result += [(percentile_label(key), number_text(ns / 1e6, "ms"))
                   for key, ns in percentiles_of(record).items()]
        if loadgen.mean_latency_ns is not None:
            result.append(("mean", number_text(loadgen.mean_latency_ns / 1e6, "ms")))
        if loadgen.query_count is not None:
            result.append(("queries", f"{loadgen.query_count:,}"))
        if loadgen.duration_ms is not None:
            result.append(("LoadGen duration", f"{loadgen.duration_ms / 1000:.3f} s"))
    if record.accuracy is not None:
        accuracy = record.accuracy
        text = f"{accuracy.value:.3f}% {accuracy.metric} ({accuracy.total} samples)"
        if accuracy.target is not None:
            verdict_word = "meets" if accuracy.meets_target else "below"
            text += f", {verdict_word} the target {accuracy.target:.3f}%"
        result.append(("accuracy", text))
    sections = [Section("test", identity), Section("verdict", tuple(verdict)),
                Section("result", tuple(result))]
    if record.sut_details:
        sections.append(Section("SUT details", tuple(
            (key, _text(value)) for key, value in sorted(record.sut_details.items()))))
    # the settings and provenance that have a value (--json shows them whole)
    sections.append(Section("settings", tuple(
        (key, _text(value)) for key, value in flatten(test.settings).items()
        if value is not None)))
    sections.append(Section("provenance", tuple(
        (key, _text(value)) for key, value in flatten(test.provenance).items()
        if value is not None)))
    sections.append(Section("logs", (("folder", record.log_dir),)))
    return ShowView(test.test_id, tuple(sections), tuple(record.reasons))


def stored_json(test: StoredTestLike) -> dict[str, Any]:
    """The whole stored test as one JSON-ready document (`results show --json`)."""
    return {"test_id": test.test_id, "kind": test.kind,
            "record": test.record.model_dump(mode="json"),
            "settings": _plain(test.settings), "provenance": _plain(test.provenance)}


def _plain(data: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(data, default=str))


# ----------------------------------------------------------------------------- export

# The flat columns of `results export --format csv|parquet`, in order (json export
# keeps each test whole: stored_json)
EXPORT_COLUMNS: tuple[str, ...] = (
    "test_id", "run_id", "kind", "started", "finished", "system", "model", "mlperf_model",
    "sut_kind", "backend", "backend_version", "device", "device_in_use", "scenario", "mode",
    "execution_mode", "status", "reasons", "submittable", "metric_name", "metric_value",
    "metric_unit", *(f"{percentile_label(key)}_ns" for key in SHOWN_PERCENTILES),
    "mean_latency_ns", "query_count", "loadgen_duration_ms", "accuracy_metric",
    "accuracy_value", "accuracy_target", "samples_failed", "duration_s", "log_dir",
    "command", "tool_version", "settings_json", "versions_json",
)


def export_row(test: StoredTestLike) -> dict[str, Any]:
    """One test as a flat row of EXPORT_COLUMNS (str, int, float, bool or None)."""
    record = test.record
    loadgen = record.loadgen
    percentiles = percentiles_of(record)
    accuracy = record.accuracy
    provenance = test.provenance
    versions = provenance.get("versions") or {}
    packages = versions.get("packages") if isinstance(versions, Mapping) else None
    row: dict[str, Any] = {
        "test_id": test.test_id, "run_id": record.run_id, "kind": test.kind,
        "started": record.started.isoformat(),
        "finished": record.finished.isoformat() if record.finished else None,
        "system": record.system, "model": record.model, "mlperf_model": record.mlperf_model,
        "sut_kind": record.sut_kind, "backend": record.backend,
        "backend_version": record.backend_version, "device": record.device,
        "device_in_use": record.device_in_use, "scenario": record.scenario.value,
        "mode": record.mode.value,
        "execution_mode": record.execution_mode.value if record.execution_mode else None,
        "status": record.status.value, "reasons": "; ".join(record.reasons),
        "submittable": record.submittable, "metric_name": record.metric_name,
        "metric_value": record.metric_value, "metric_unit": record.metric_unit,
        **{f"{percentile_label(key)}_ns": percentiles.get(key) for key in SHOWN_PERCENTILES},
        "mean_latency_ns": loadgen.mean_latency_ns if loadgen else None,
        "query_count": loadgen.query_count if loadgen else None,
        "loadgen_duration_ms": loadgen.duration_ms if loadgen else None,
        "accuracy_metric": accuracy.metric if accuracy else None,
        "accuracy_value": accuracy.value if accuracy else None,
        "accuracy_target": accuracy.target if accuracy else None,
        "samples_failed": record.samples_failed, "duration_s": record.duration_s,
        "log_dir": record.log_dir, "command": provenance.get("command"),
        "tool_version": provenance.get("tool_version") or (
            packages.get("mlperf-pilot") if isinstance(packages, Mapping) else None),
        "settings_json": json.dumps(_plain(test.settings), sort_keys=True),
        "versions_json": json.dumps(_plain(versions) if isinstance(versions, Mapping)
                                    else {}, sort_keys=True),
    }
    return {column: row[column] for column in EXPORT_COLUMNS}


def export_rows(tests: Sequence[StoredTestLike]) -> list[dict[str, Any]]:
    return [export_row(test) for test in tests]


__all__ = [
    "EXPORT_COLUMNS",
    "LIST_COLUMNS",
    "SHOWN_PERCENTILES",
    "ListRow",
    "Section",
    "ShowView",
    "StoredTestLike",
    "export_row",
    "export_rows",
    "flatten",
    "list_cells",
    "list_rows",
    "lower_is_better",
    "number_text",
    "percentile_label",
    "percentiles_of",
    "show_view",
    "stored_json",
    "sut_label",
]

"""The one parser of LoadGen's logs; every number the tool shows comes from here.

``mlperf_log_detail.txt`` is the source of truth: one ``:::MLLOG {json}`` entry per
line. ``mlperf_log_summary.txt`` is the human view; when both state validity they must
agree. The headline metric follows the official submission checker:

    Offline       result_samples_per_second          Samples/s
    SingleStream  early_stopping_latency_ss  (ns→ms)  ms
    MultiStream   early_stopping_latency_ms  (ns→ms)  ms
    Server        result_completed_samples_per_sec   Samples/s
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlperf_pilot.errors import LoadGenError

SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
ACCURACY_FILE = "mlperf_log_accuracy.json"
_PREFIX = ":::MLLOG "
_AUDIT_WARNING = "Found Audit Config file"

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")

# scenario -> (detail key, metric name, unit, divisor applied to the raw value)
_METRICS: dict[str, tuple[str, str, str, float]] = {
    "Offline": ("result_samples_per_second", "samples per second", "Samples/s", 1.0),
    "Server": ("result_completed_samples_per_sec", "completed samples per second",
               "Samples/s", 1.0),
    "SingleStream": ("early_stopping_latency_ss", "90th percentile latency (early stopping)",
                     "ms", 1e6),
    "MultiStream": ("early_stopping_latency_ms",
                    "99th percentile per-query latency (early stopping)", "ms", 1e6),
}


# ------------------------------------------------------------------------------ summary


def parse_summary(text: str) -> dict[str, str]:
    """The ``key : value`` lines of mlperf_log_summary.txt (first occurrence wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line or line.lstrip().startswith(("*", "=")):
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key and value and key not in found:
            found[key] = value
    return found


# ------------------------------------------------------------------------------- detail


@dataclass(frozen=True)
class DetailEntry:
    key: str
    value: Any
    time_ms: float | None
    event_type: str | None
    is_error: bool
    is_warning: bool


class DetailLog:
    """The entries of mlperf_log_detail.txt, in order."""

    def __init__(self, entries: list[DetailEntry], path: Path | None = None) -> None:
        self.entries = entries
        self.path = path
        self._last: dict[str, Any] = {}
        for entry in entries:
            self._last[entry.key] = entry.value

    def get(self, key: str, default: Any = None) -> Any:
        """The value of the last entry with ``key``."""
        return self._last.get(key, default)

    def has(self, key: str) -> bool:
        return key in self._last

    def keys_with_prefix(self, prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in self._last.items() if k.startswith(prefix)}

    @property
    def errors(self) -> list[DetailEntry]:
        return [e for e in self.entries if e.is_error]

    @property
    def warnings(self) -> list[DetailEntry]:
        return [e for e in self.entries if e.is_warning]


def parse_detail_text(text: str, origin: str = "mlperf_log_detail.txt") -> DetailLog:
    entries: list[DetailEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(_PREFIX):
            continue
        try:
            raw = json.loads(line[len(_PREFIX):])
            meta = raw.get("metadata") or {}
            entries.append(DetailEntry(
                key=raw["key"], value=raw.get("value"), time_ms=raw.get("time_ms"),
                event_type=raw.get("event_type"), is_error=bool(meta.get("is_error")),
                is_warning=bool(meta.get("is_warning")),
            ))
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise LoadGenError(
                f"{origin}:{number} is not a valid LoadGen log entry ({exc})",
                hint="the log is truncated or was edited; rerun the test to get a whole log",
            ) from exc
    return DetailLog(entries)


def parse_detail(path: Path) -> DetailLog:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadGenError(
            f"LoadGen detail log {path} does not exist",
            hint="LoadGen did not run or was stopped before it wrote its logs; rerun the test",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadGenError(f"LoadGen detail log {path} cannot be read: {exc}") from exc
    log = parse_detail_text(text, str(path))
    log.path = path
    return log


# ------------------------------------------------------------------------------- result


class LoadGenResult(BaseModel):
    """What one LoadGen test reported, from its own logs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str | None
    mode: str | None
    valid: bool | None  # None in accuracy mode: LoadGen judges no validity there
    result_validity: str | None = None
    invalid_reason: str | None = None
    min_duration_met: bool | None = None
    min_queries_met: bool | None = None
    early_stopping_met: bool | None = None
    performance_constraints_met: bool | None = None
    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None
    samples_per_second: float | None = None
    completed_samples_per_sec: float | None = None
    scheduled_samples_per_sec: float | None = None
    qps_with_loadgen_overhead: float | None = None
    qps_without_loadgen_overhead: float | None = None
    early_stopping_latency_ss_ns: float | None = None
    early_stopping_latency_ms_ns: float | None = None
    min_latency_ns: float | None = None
    max_latency_ns: float | None = None
    mean_latency_ns: float | None = None
    latency_percentiles_ns: dict[str, float] = Field(default_factory=dict)
    query_count: int | None = None
    duration_ms: float | None = None
    effective: dict[str, Any] = Field(default_factory=dict)
    requested: dict[str, Any] = Field(default_factory=dict)
    loadgen_version: str | None = None
    sut_name: str | None = None
    test_datetime: str | None = None
    qsl_reported_total_count: int | None = None
    qsl_reported_performance_count: int | None = None
    generated_query_count: int | None = None
    generated_samples_per_query: int | None = None
    num_errors: int = 0
    error_messages: list[str] = Field(default_factory=list)
    warning_messages: list[str] = Field(default_factory=list)
    audit_config_found: bool = False


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "1", "valid"}


def _percentiles(log: DetailLog) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in log.keys_with_prefix("result_").items():
        if key.endswith("_percentile_latency_ns") and "per_query" not in key:
            number = _float(value)
            if number is not None:
                found[key.removesuffix("_percentile_latency_ns")] = number
    return found


def result_from_detail(log: DetailLog) -> LoadGenResult:
    scenario = log.get("effective_scenario") or log.get("requested_scenario")
    mode = log.get("effective_test_mode") or log.get("requested_test_mode")
    validity = log.get("result_validity")
    accuracy = mode == "AccuracyOnly"
    metric_key = _METRICS.get(str(scenario))
    metric_value = None
    if metric_key is not None and not accuracy:
        raw = _float(log.get(metric_key[0]))
        metric_value = raw / metric_key[3] if raw is not None else None
    errors = [str(e.value) for e in log.errors]
    warnings = [str(e.value) for e in log.warnings]
    num_errors = _int(log.get("num_errors"))
    duration_ns = _float(log.get("result_max_latency_ns")) if scenario == "Offline" else None
    return LoadGenResult(
        scenario=str(scenario) if scenario is not None else None,
        mode=str(mode) if mode is not None else None,
        valid=None if accuracy or validity is None else validity == "VALID",
        result_validity=validity,
        invalid_reason=(str(log.get("result_invalid_reason")).strip() or None)
        if log.has("result_invalid_reason") else None,
        min_duration_met=_bool(log.get("result_min_duration_met")),
        min_queries_met=_bool(log.get("result_min_queries_met")),
        early_stopping_met=_bool(log.get("early_stopping_met")),
        performance_constraints_met=_bool(log.get("result_perf_constraints_met")),
        metric_name=metric_key[1] if metric_key and metric_value is not None else None,
        metric_value=metric_value,
        metric_unit=metric_key[2] if metric_key and metric_value is not None else None,
        samples_per_second=_float(log.get("result_samples_per_second")),
        completed_samples_per_sec=_float(log.get("result_completed_samples_per_sec")),
        scheduled_samples_per_sec=_float(log.get("result_scheduled_samples_per_sec")),
        qps_with_loadgen_overhead=_float(log.get("result_qps_with_loadgen_overhead")),
        qps_without_loadgen_overhead=_float(log.get("result_qps_without_loadgen_overhead")),
        early_stopping_latency_ss_ns=_float(log.get("early_stopping_latency_ss")),
        early_stopping_latency_ms_ns=_float(log.get("early_stopping_latency_ms")),
        min_latency_ns=_float(log.get("result_min_latency_ns")),
        max_latency_ns=_float(log.get("result_max_latency_ns")),
        mean_latency_ns=_float(log.get("result_mean_latency_ns")),
        latency_percentiles_ns=_percentiles(log),
        query_count=_int(log.get("result_query_count")),
        duration_ms=duration_ns / 1e6 if duration_ns is not None else None,
        effective=log.keys_with_prefix("effective_"),
        requested=log.keys_with_prefix("requested_"),
        loadgen_version=log.get("loadgen_version"),
        sut_name=log.get("sut_name"),
        test_datetime=log.get("test_datetime"),
        qsl_reported_total_count=_int(log.get("qsl_reported_total_count")),
        qsl_reported_performance_count=_int(log.get("qsl_reported_performance_count")),
        generated_query_count=_int(log.get("generated_query_count")),
        generated_samples_per_query=_int(log.get("generated_samples_per_query")),
        num_errors=num_errors if num_errors is not None else len(errors),
        error_messages=errors,
        warning_messages=warnings,
        audit_config_found=any(_AUDIT_WARNING in m for m in warnings),
    )


def read_result(log_dir: Path) -> LoadGenResult:
    """Parse a run folder's logs (the detail log is required, the summary optional)."""
    log_dir = Path(log_dir)
    result = result_from_detail(parse_detail(log_dir / DETAIL_FILE))
    summary_path = log_dir / SUMMARY_FILE
    if summary_path.is_file() and result.valid is not None:
        stated = parse_summary(summary_path.read_text(encoding="utf-8")).get("Result is")
        if stated is not None and (stated == "VALID") != result.valid:
            raise LoadGenError(
                f"{summary_path} says {stated} but {DETAIL_FILE} says {result.result_validity}",
                hint="the two logs come from different runs; rerun the test",
            )
    return result

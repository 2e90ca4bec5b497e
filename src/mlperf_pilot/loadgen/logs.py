"""The one parser of LoadGen's logs: every number the tool shows comes from here.

LoadGen's own files are the source of truth and are kept verbatim; this module only
reads them.

``mlperf_log_detail.txt`` holds one ``:::MLLOG {json}`` entry per line (``key``,
``value``, ``time_ms``, ``event_type``, ``metadata`` with ``is_error``/``is_warning``).
It is required. ``mlperf_log_summary.txt`` is the human view (``key : value`` lines);
it is optional, and when both files state the run's validity they must agree.

The headline metric follows the official submission checker:

    Offline       result_samples_per_second          Samples/s
    SingleStream  early_stopping_latency_ss  (ns→ms)  ms
    MultiStream   early_stopping_latency_ms  (ns→ms)  ms
    Server        result_completed_samples_per_sec   Samples/s

The detail log's lines are read by :mod:`mlperf_pilot.loadgen.detail` (re-exported
here); this module turns them into a :class:`LoadGenResult`.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast, get_args

from pydantic import BaseModel, ConfigDict, Field

from mlperf_pilot.errors import LoadGenError
from mlperf_pilot.loadgen.detail import (  # the detail log's half of the parser, re-exported
    DETAIL_FILE,
    DetailEntry,
    DetailLog,
    parse_detail,
    parse_detail_text,
)
from mlperf_pilot.vocab import ALL_SCENARIOS, Mode, Scenario

SUMMARY_FILE = "mlperf_log_summary.txt"
ACCURACY_FILE = "mlperf_log_accuracy.json"

SCENARIOS = tuple(scenario.value for scenario in ALL_SCENARIOS)
# LoadGen's test modes, as its logs spell them (not our Mode: a run of Mode.PERFORMANCE
# is LoadGen's PerformanceOnly; SubmissionRun and FindPeakPerformance are LoadGen's own)
LoadGenTestMode = Literal["AccuracyOnly", "PerformanceOnly", "SubmissionRun",
                          "FindPeakPerformance"]
MODES: tuple[LoadGenTestMode, ...] = get_args(LoadGenTestMode)
_RUN_MODES: dict[str, Mode] = {"AccuracyOnly": Mode.ACCURACY,
                               "PerformanceOnly": Mode.PERFORMANCE}

_AUDIT_WARNING = "Found Audit Config file"
_POWER_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"

# What LoadGen has written for each scenario and mode, in either of its logging formats
# ("Single Stream" and "Performance" are the old format), folded to one spelling.
_SCENARIO_NAMES: dict[str, Scenario] = {s.value.lower(): s for s in ALL_SCENARIOS}
_MODE_NAMES: dict[str, str] = {
    **{name.lower(): name for name in MODES},
    # LoadGen's old-format words (its own log values, not our Mode)
    "accuracy": "AccuracyOnly",
    "performance": "PerformanceOnly",
    "submission": "SubmissionRun",
}


class _Metric(NamedTuple):
    key: str  # detail key the submission checker reads
    unit: str
    divisor: float  # raw value / divisor = value in ``unit``


_METRICS: dict[Scenario, _Metric] = {
    Scenario.OFFLINE: _Metric("result_samples_per_second", "Samples/s", 1.0),
    Scenario.SERVER: _Metric("result_completed_samples_per_sec", "Samples/s", 1.0),
    Scenario.SINGLE_STREAM: _Metric("early_stopping_latency_ss", "ms", 1e6),
    Scenario.MULTI_STREAM: _Metric("early_stopping_latency_ms", "ms", 1e6),
}

# ------------------------------------------------------------------------------ summary


def parse_summary(text: str) -> dict[str, str]:
    """The ``key : value`` lines of mlperf_log_summary.txt, first occurrence of a key.

    Keys and values are stripped. Rulers (``=====``), section titles (``Recommendations:``,
    no value), bullet text (`` * ...``) and lines without a colon are left out.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, value = _summary_pair(line)
        if key and key not in found:
            found[key] = value
    return found


def _summary_pair(line: str) -> tuple[str, str]:
    """(key, value) of one summary line, or ("", "") for anything else."""
    stripped = line.strip()
    if not stripped or stripped.startswith(("*", "=")):
        return "", ""
    key, colon, value = stripped.partition(":")
    key, value = key.strip(), value.strip()
    if not colon or not key or not value:
        return "", ""
    return key, value


# ------------------------------------------------------------------------------- result


class LoadGenResult(BaseModel):
    """What one LoadGen test reported, read from its own logs and nothing else.

    Latencies are in ns as LoadGen logs them; ``metric_value`` is in ``metric_unit``.
    Fields LoadGen did not log for this scenario or mode are None (or empty). It
    round-trips through JSON (``model_dump_json`` / ``model_validate_json``); a
    RunRecord keeps it whole.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: Scenario
    mode: LoadGenTestMode  # LoadGen's test mode (see run_mode for ours)
    valid: bool | None  # None where LoadGen judged no validity (accuracy mode)
    result_validity: str | None = None  # as logged: "VALID" | "INVALID"
    invalid_reason: str | None = None
    min_duration_met: bool | None = None
    min_queries_met: bool | None = None
    early_stopping_met: bool | None = None
    performance_constraints_met: bool | None = None  # Server only
    early_stopping_result: str | None = None

    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None

    samples_per_second: float | None = None  # Offline
    completed_samples_per_sec: float | None = None  # Server
    scheduled_samples_per_sec: float | None = None  # Server
    qps_with_loadgen_overhead: float | None = None  # SingleStream
    qps_without_loadgen_overhead: float | None = None  # SingleStream
    tokens_per_second: float | None = None  # Offline with token latencies
    completed_tokens_per_second: float | None = None  # Server with token latencies
    # early-stopping estimates; None where LoadGen logged 0 (too few queries to estimate)
    early_stopping_latency_ss_ns: float | None = None  # SingleStream
    early_stopping_latency_ms_ns: float | None = None  # MultiStream (and SingleStream's p99)

    min_latency_ns: float | None = None
    max_latency_ns: float | None = None
    mean_latency_ns: float | None = None
    latency_percentiles_ns: dict[str, float] = Field(default_factory=dict)  # "90.00" -> ns
    min_query_latency_ns: float | None = None  # MultiStream per-query latencies
    max_query_latency_ns: float | None = None
    mean_query_latency_ns: float | None = None
    query_latency_percentiles_ns: dict[str, float] = Field(default_factory=dict)
    query_count: int | None = None
    overlatency_query_count: int | None = None  # Server
    duration_ms: float | None = None  # SUT active time: power_begin -> power_end

    effective_settings: dict[str, Any] = Field(default_factory=dict)  # effective_* keys
    requested_settings: dict[str, Any] = Field(default_factory=dict)  # requested_* keys
    loadgen_version: str | None = None
    sut_name: str | None = None
    qsl_name: str | None = None
    test_datetime: str | None = None
    qsl_reported_total_count: int | None = None
    qsl_reported_performance_count: int | None = None
    generated_query_count: int | None = None
    generated_samples_per_query: int | None = None

    num_errors: int = 0
    error_messages: list[str] = Field(default_factory=list)
    warning_messages: list[str] = Field(default_factory=list)
    audit_config_found: bool = False

    @property
    def run_mode(self) -> Mode | None:
        """Our Mode of this test (None for LoadGen's SubmissionRun/FindPeakPerformance)."""
        return _RUN_MODES.get(self.mode)


def result_from_detail(log: DetailLog) -> LoadGenResult:
    """Everything a LoadGenResult holds, from a parsed detail log."""
    source = str(log.path) if log.path is not None else DETAIL_FILE
    scenario = _scenario(log, source)
    validity = log.get("result_validity")
    errors = [_message(entry.value) for entry in log.errors]
    warnings = [_message(entry.value) for entry in log.warnings]
    logged_errors = _int(log.get("num_errors"))
    return LoadGenResult(
        scenario=scenario,
        mode=_mode(log, source),
        valid=None if validity is None else str(validity).strip().upper() == "VALID",
        result_validity=None if validity is None else str(validity),
        invalid_reason=_invalid_reason(log),
        min_duration_met=_bool(log.get("result_min_duration_met")),
        min_queries_met=_bool(log.get("result_min_queries_met")),
        early_stopping_met=_bool(log.get("early_stopping_met")),
        performance_constraints_met=_bool(log.get("result_perf_constraints_met")),
        early_stopping_result=_text(log.get("early_stopping_result")),
        **_headline(log, scenario),
        samples_per_second=_float(log.get("result_samples_per_second")),
        completed_samples_per_sec=_float(log.get("result_completed_samples_per_sec")),
        scheduled_samples_per_sec=_float(log.get("result_scheduled_samples_per_sec")),
        qps_with_loadgen_overhead=_float(log.get("result_qps_with_loadgen_overhead")),
        qps_without_loadgen_overhead=_float(log.get("result_qps_without_loadgen_overhead")),
        tokens_per_second=_float(log.get("result_tokens_per_second")),
        completed_tokens_per_second=_float(log.get("result_completed_tokens_per_second")),
        early_stopping_latency_ss_ns=_estimate(log.get("early_stopping_latency_ss")),
        early_stopping_latency_ms_ns=_estimate(log.get("early_stopping_latency_ms")),
        min_latency_ns=_float(log.get("result_min_latency_ns")),
        max_latency_ns=_float(log.get("result_max_latency_ns")),
        mean_latency_ns=_float(log.get("result_mean_latency_ns")),
        latency_percentiles_ns=_percentiles(log, "_percentile_latency_ns"),
        min_query_latency_ns=_float(log.get("result_min_query_latency_ns")),
        max_query_latency_ns=_float(log.get("result_max_query_latency_ns")),
        mean_query_latency_ns=_float(log.get("result_mean_query_latency_ns")),
        query_latency_percentiles_ns=_percentiles(log, "_percentile_per_query_latency_ns"),
        query_count=_int(log.get("result_query_count")),
        overlatency_query_count=_int(log.get("result_overlatency_query_count")),
        duration_ms=_duration_ms(log),
        effective_settings=log.with_prefix("effective_"),
        requested_settings=log.with_prefix("requested_"),
        loadgen_version=_text(log.get("loadgen_version")),
        sut_name=_text(log.get("sut_name")),
        qsl_name=_text(log.get("qsl_name")),
        test_datetime=_text(log.get("test_datetime")),
        qsl_reported_total_count=_int(log.get("qsl_reported_total_count")),
        qsl_reported_performance_count=_int(log.get("qsl_reported_performance_count")),
        generated_query_count=_int(log.get("generated_query_count")),
        generated_samples_per_query=_int(log.get("generated_samples_per_query")),
        num_errors=logged_errors if logged_errors is not None else len(errors),
        error_messages=errors,
        warning_messages=warnings,
        audit_config_found=any(_AUDIT_WARNING in message for message in warnings),
    )


def read_result(log_dir: Path) -> LoadGenResult:
    """Parse one LoadGen output folder: the detail log (required) and the summary.

    When the summary is there and states scenario, mode or validity, each must match
    the detail log, or the two files come from different runs (LoadGenError).
    """
    log_dir = Path(log_dir)
    result = result_from_detail(parse_detail(log_dir / DETAIL_FILE))
    summary_path = log_dir / SUMMARY_FILE
    try:
        summary_text = summary_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return result
    except OSError as exc:
        raise LoadGenError(
            f"LoadGen summary {summary_path} cannot be read: {exc.strerror or exc}",
            hint="check the file's permissions, or delete it: the detail log is enough",
        ) from exc
    _check_summary(parse_summary(summary_text), result, summary_path)
    return result


def _check_summary(summary: dict[str, str], result: LoadGenResult, path: Path) -> None:
    stated = {
        "scenario": (_fold(summary.get("Scenario"), _SCENARIO_NAMES), result.scenario),
        "mode": (_fold(summary.get("Mode"), _MODE_NAMES), result.mode),
        "result": (summary.get("Result is"), result.result_validity),
    }
    for what, (in_summary, in_detail) in stated.items():
        if in_summary is None or in_detail is None or in_summary == in_detail:
            continue
        raise LoadGenError(
            f"{path} says {what} {in_summary} but {DETAIL_FILE} next to it says {in_detail}",
            hint="the two logs come from different LoadGen runs; rerun the test or "
            "restore both files from the same run",
        )


# ------------------------------------------------------------------------------ helpers


def logged_scenario(log: DetailLog) -> Scenario | None:
    """The scenario a detail log says LoadGen ran (``effective_scenario``, else
    ``requested_scenario``, in either logging format), or None when it names none."""
    return _fold(log.get("effective_scenario", log.get("requested_scenario")), _SCENARIO_NAMES)


def _scenario(log: DetailLog, source: str) -> Scenario:
    scenario = logged_scenario(log)
    if scenario is None:
        raise _unreadable(log, source, "scenario",
                          log.get("effective_scenario", log.get("requested_scenario")))
    return scenario


def _mode(log: DetailLog, source: str) -> LoadGenTestMode:
    raw = log.get("effective_test_mode", log.get("requested_test_mode"))
    mode = _fold(raw, _MODE_NAMES)
    if mode is None:
        raise _unreadable(log, source, "test mode", raw)
    return cast(LoadGenTestMode, mode)  # a value of _MODE_NAMES: one of MODES


def _fold(raw: Any, names: dict[str, Any]) -> Any:
    """LoadGen's spelling of a scenario or mode (any case, spaces or not), or None."""
    if raw is None:
        return None
    text = str(raw).strip().rsplit(".", 1)[-1]  # also "TestScenario.Offline"
    return names.get(text.replace(" ", "").lower())


def _unreadable(log: DetailLog, source: str, what: str, raw: Any) -> LoadGenError:
    if not log.entries:
        return LoadGenError(
            f"{source} holds no LoadGen entries",
            hint="LoadGen stopped before it logged anything; rerun the test",
        )
    if raw is None:
        return LoadGenError(
            f"{source} names no {what}",
            hint="the log ends before LoadGen logged its settings: the test was stopped; "
            "rerun it",
        )
    return LoadGenError(
        f"{source} names an unknown {what} {raw!r}",
        hint="this LoadGen is newer than mlperf-pilot knows; upgrade mlperf-pilot",
    )


def _headline(log: DetailLog, scenario: Scenario) -> dict[str, Any]:
    """metric_name/value/unit as the submission checker reads them (all None if absent)."""
    metric = _METRICS[scenario]
    raw = (_estimate if metric.unit == "ms" else _float)(log.get(metric.key))
    if raw is None:
        return {"metric_name": None, "metric_value": None, "metric_unit": None}
    return {
        "metric_name": _metric_name(log, scenario),
        "metric_value": raw / metric.divisor,
        "metric_unit": metric.unit,
    }


def _metric_name(log: DetailLog, scenario: Scenario) -> str:
    if scenario is Scenario.OFFLINE:
        return "samples per second"
    if scenario is Scenario.SERVER:
        return "completed samples per second"
    single = scenario is Scenario.SINGLE_STREAM
    default = 0.9 if single else 0.99
    percentile = _float(log.get("effective_target_latency_percentile")) or default
    latency = "latency" if single else "per-query latency"
    return f"{percentile * 100:g}th percentile {latency} (early stopping)"


def _percentiles(log: DetailLog, suffix: str) -> dict[str, float]:
    """``{"90.00": ns}`` from ``result_90.00<suffix>`` keys (not the token latencies)."""
    found: dict[str, float] = {}
    for key, value in log.with_prefix("result_").items():
        if not key.endswith(suffix):
            continue
        percentile = key[: -len(suffix)]
        number = _float(value)
        if number is not None and _is_number(percentile):
            found[percentile] = number
    return found


def _invalid_reason(log: DetailLog) -> str | None:
    """LoadGen's reason; it logs none when only early stopping failed, so use that text."""
    reason = _text(log.get("result_invalid_reason"))
    if reason is None and _bool(log.get("early_stopping_met")) is False:
        reason = _text(log.get("early_stopping_result"))
    return reason


def _duration_ms(log: DetailLog) -> float | None:
    begin, end = log.get("power_begin"), log.get("power_end")
    try:
        start = datetime.strptime(str(begin), _POWER_TIME_FORMAT)
        stop = datetime.strptime(str(end), _POWER_TIME_FORMAT)
    except ValueError:
        return None
    return (stop - start).total_seconds() * 1000.0


def _message(value: Any) -> str:
    return " ".join(str(value).split())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _estimate(value: Any) -> float | None:
    """An early-stopping estimate; LoadGen logs 0 when it could not make one."""
    number = _float(value)
    return number if number is not None and number > 0 else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _float(value)
    return int(number) if number is not None else None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "1"}


__all__ = ["ACCURACY_FILE", "DETAIL_FILE", "SUMMARY_FILE", "DetailEntry", "DetailLog",
           "LoadGenResult", "logged_scenario", "parse_detail", "parse_detail_text",
           "parse_summary", "read_result", "result_from_detail"]

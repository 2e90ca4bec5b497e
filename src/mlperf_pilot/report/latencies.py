"""Per-query latencies of a LoadGen performance test, and the percentiles MLPerf reports.

LoadGen's detail and summary logs give only aggregates (min, max, mean and the 50/90/95/
97/99/99.9th percentiles). Its trace, ``mlperf_log_trace.json`` (written when a run has
``--trace``), has a ``Sample`` begin event per sample: ``ts`` is the time LoadGen
scheduled the sample's query (µs since the test began) and ``args`` hold
``issue_start_ns`` (scheduled → issued to the SUT) and ``complete_ns`` (scheduled → the
SUT completed it; the matching end event is at ``ts`` + ``complete_ns``).
``complete_ns`` is the sample's latency as LoadGen counts it (its mean, minimum and
percentiles are the summary's, checked in the tests, Server included, where issuing
lags); a query's latency is that of its last sample (MultiStream reports per-query
latencies).

LoadGen writes one trace event per line, so the file is read line by line and only the
``Sample`` begin lines are decoded: a long run's trace stays cheap to read.

:func:`latencies_of` gives a test's :class:`Latencies`: the per-sample (or per-query)
values when a trace is there, and always the percentiles LoadGen itself reported
(:class:`Mark`), which the charts draw as they are.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    import numpy as np

    from mlperf_pilot.loadgen.logs import LoadGenResult

TRACE_FILE = "mlperf_log_trace.json"
_SAMPLE_BEGIN = '"name":"Sample"'


@dataclasses.dataclass(frozen=True)
class SampleTimes:
    """The trace's samples: scheduled time (s since the test began), latency (ns) and
    the query each belongs to."""

    scheduled_s: np.ndarray
    latency_ns: np.ndarray
    query: np.ndarray

    def __len__(self) -> int:
        return int(self.latency_ns.size)

    @property
    def completed_s(self) -> np.ndarray:
        return self.scheduled_s + self.latency_ns / 1e9

    def query_latency_ns(self) -> np.ndarray:
        """Per query, the latency of its last sample (queries in the order issued)."""
        import numpy as np

        order = np.argsort(self.query, kind="stable")
        queries, starts = np.unique(self.query[order], return_index=True)
        del queries
        return np.maximum.reduceat(self.latency_ns[order], starts) if starts.size else \
            self.latency_ns[:0]


@dataclasses.dataclass(frozen=True)
class Mark:
    """A percentile as LoadGen reported it: ``label`` (``p90``), percent, value in ms;
    ``headline``: the percentile the scenario's result is judged at."""

    label: str
    percent: float
    ms: float
    headline: bool = False


@dataclasses.dataclass(frozen=True)
class Latencies:
    """What a test's latency charts draw. ``values_ms`` is None without a trace (then
    only ``marks``, LoadGen's summary, exist). ``per`` is ``sample`` or ``query``."""

    per: str
    marks: tuple[Mark, ...]
    values_ms: np.ndarray | None = None
    times: SampleTimes | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    bound_ms: float | None = None  # Server: the latency bound (effective_target_latency_ns)

    @property
    def source(self) -> str:
        return "trace" if self.values_ms is not None else "summary"


def read_trace(path: Path) -> SampleTimes | None:
    """The ``Sample`` events of a LoadGen trace; None when the file is absent or holds
    none. A line that does not decode (a trace cut short) is skipped."""
    import numpy as np

    scheduled: list[float] = []
    latency: list[float] = []
    query: list[int] = []
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return None
    with handle:
        for line in handle:
            if _SAMPLE_BEGIN not in line or '"ph":"b"' not in line:
                continue
            event = _event(line)
            args = event.get("args") if event else None
            if not isinstance(args, dict):
                continue
            try:
                scheduled.append(float(event["ts"]) / 1e6)
                latency.append(float(args["complete_ns"]))
                query.append(int(args.get("query_seq", len(query))))
            except (KeyError, TypeError, ValueError):
                continue
    if not latency:
        return None
    return SampleTimes(np.asarray(scheduled), np.asarray(latency), np.asarray(query))


def _event(line: str) -> dict[str, Any] | None:
    text = line.strip().rstrip(",")
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def latencies_of(result: LoadGenResult, log_dir: Path | None) -> Latencies:
    """The latencies of one performance test: LoadGen's percentiles, and the per-sample
    (MultiStream: per-query) values when ``log_dir`` holds a trace."""
    import numpy as np

    per_query = result.scenario is Scenario.MULTI_STREAM
    percentiles = result.query_latency_percentiles_ns if per_query else \
        result.latency_percentiles_ns
    headline = _headline_percent(result)
    marks = tuple(
        Mark(label=f"p{_tile(percent)}", percent=percent, ms=ns / 1e6,
             headline=headline is not None and abs(percent - headline) < 1e-6)
        for percent, ns in sorted((_percent(key), value) for key, value in
                                  percentiles.items() if _percent(key) is not None))
    prefix = "query_" if per_query else ""
    times = read_trace(log_dir / TRACE_FILE) if log_dir is not None else None
    values = None
    if times is not None:
        values = (times.query_latency_ns() if per_query else times.latency_ns) / 1e6
        values = np.sort(values)
    bound = result.effective_settings.get("target_latency_ns") \
        if result.scenario is Scenario.SERVER else None
    return Latencies(
        per="query" if per_query else "sample", marks=marks, values_ms=values, times=times,
        mean_ms=_ms(getattr(result, f"mean_{prefix}latency_ns")),
        min_ms=_ms(getattr(result, f"min_{prefix}latency_ns")),
        max_ms=_ms(getattr(result, f"max_{prefix}latency_ns")),
        bound_ms=_ms(bound))


def _headline_percent(result: LoadGenResult) -> float | None:
    """The percentile the scenario is judged at (LoadGen's effective setting)."""
    if result.scenario is Scenario.OFFLINE:
        return None
    value = result.effective_settings.get("target_latency_percentile")
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        return {Scenario.SINGLE_STREAM: 90.0}.get(result.scenario, 99.0)
    return fraction * 100 if fraction <= 1 else fraction


def _percent(key: Any) -> float | None:
    try:
        return float(key)
    except (TypeError, ValueError):
        return None


def _tile(percent: float) -> str:
    return f"{percent:g}"


def _ms(ns: Any) -> float | None:
    try:
        return float(ns) / 1e6 if ns is not None else None
    except (TypeError, ValueError):
        return None


__all__ = ["TRACE_FILE", "Latencies", "Mark", "SampleTimes", "latencies_of", "read_trace"]

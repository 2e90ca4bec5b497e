"""``report --sweep``: what a sweep's points measured, for the report's sweep section.

Pure functions of the sweep's state (:class:`~mlperf_pilot.sweep.state.SweepState`: its
points, their settings, ``mlperf-pilot run`` commands and test ids) and of the stored
tests of those ids; nothing here opens the store or writes a file.

- :func:`measures`: per point and scenario, the point's performance test: its headline
  metric (LoadGen's), throughput (samples/s) and p99 latency (LoadGen's percentiles).
- :func:`best_per_scenario`: the best point per scenario by the headline metric (higher
  samples/s, lower ms), among the VALID tests (all tests with a number when none is).
- :func:`pareto_front`: the points no other point beats on both throughput and latency.
- :func:`key_pictures`: per scenario and swept key, the metric across the key's values,
  one bar series per combination of the other keys
  (:func:`~mlperf_pilot.report.bars.bar_figure`, the report's bars).
- :func:`pareto_pictures`: throughput against p99 latency over the points, the front
  highlighted, per scenario where both vary.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlperf_pilot.report.html import BestRow, SweepSection
from mlperf_pilot.report.plots import Picture, _png, _value_text
from mlperf_pilot.vocab import Mode, RunStatus, Scenario

if TYPE_CHECKING:
    from mlperf_pilot.report.tables import StoredTestLike
    from mlperf_pilot.sweep.state import SweepState

_FRONT = "#c62828"
_OTHER = "#90a4ae"


@dataclasses.dataclass(frozen=True)
class Measure:
    """One point's performance test in one scenario."""

    point: str
    label: str
    values: dict[str, Any]
    command: tuple[str, ...]
    scenario: str
    test_id: str
    status: str
    metric_name: str | None
    metric_value: float | None
    metric_unit: str | None
    throughput: float | None  # samples/s
    p99_ms: float | None  # per-sample p99 latency (MultiStream: per query)


def higher_is_better(unit: str | None) -> bool:
    """Samples/s (Offline, Server) up; ms (SingleStream, MultiStream latencies) down."""
    return unit is None or "/s" in unit


def measures(state: SweepState, tests: Sequence[StoredTestLike]) -> list[Measure]:
    """Each point's performance tests (one per scenario: the last recorded), in the
    order of the points."""
    by_id = {t.test_id: t for t in tests}
    found: list[Measure] = []
    for point in state.points:
        latest: dict[str, Measure] = {}
        for test_id in point.test_ids:
            test = by_id.get(test_id)
            if test is None or test.record.mode is not Mode.PERFORMANCE:
                continue
            record = test.record
            latest[record.scenario.value] = Measure(
                point=point.id, label=point.label, values=dict(point.values),
                command=tuple(point.command), scenario=record.scenario.value,
                test_id=test.test_id, status=record.status.value,
                metric_name=record.metric_name, metric_value=record.metric_value,
                metric_unit=record.metric_unit, throughput=_throughput(record),
                p99_ms=_p99_ms(record))
        found += latest.values()
    return found


def best_per_scenario(found: Sequence[Measure]) -> list[Measure]:
    """Per scenario (in first-seen order), the point with the best headline metric among
    the VALID tests, or among all tests with a number when none is VALID."""
    best = []
    for scenario in dict.fromkeys(m.scenario for m in found):
        numbered = [m for m in found if m.scenario == scenario and m.metric_value is not None]
        valid = [m for m in numbered if m.status == RunStatus.VALID.value]
        pool = valid or numbered
        if not pool:
            continue
        up = higher_is_better(pool[0].metric_unit)
        best.append(max(pool, key=lambda m: m.metric_value if up else -m.metric_value))
    return best


def _near_earlier(pairs: list[tuple[float, float]], index: int) -> int:
    """How many points before ``index`` lie within 3 % of both axes' spans of it."""
    spans = [max(p[k] for p in pairs) - min(p[k] for p in pairs) or 1.0 for k in (0, 1)]
    return sum(1 for other in pairs[:index]
               if all(abs(other[k] - pairs[index][k]) <= 0.03 * spans[k] for k in (0, 1)))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """The indices of the ``(throughput, latency)`` points that no other point dominates
    (at least as much throughput at no more latency, and better in one of the two),
    ordered by latency then throughput; equal points are all on the front."""
    front = []
    for i, (thr, lat) in enumerate(points):
        dominated = any(
            other_thr >= thr and other_lat <= lat and (other_thr > thr or other_lat < lat)
            for j, (other_thr, other_lat) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][1], -points[i][0], i))


def swept_keys(state: SweepState) -> list[str]:
    """The matrix's keys (file order) that take more than one value over the points."""
    keys: dict[str, set[str]] = {}
    for point in state.points:
        for key, value in point.values.items():
            keys.setdefault(key, set()).add(repr(value))
    return [key for key, values in keys.items() if len(values) > 1]


def key_pictures(found: Sequence[Measure], keys: Sequence[str]) -> list[Picture]:
    """Per scenario and swept key: the headline metric (y) over the key's values (x), a
    bar series per combination of the other swept keys."""
    from mlperf_pilot.report.bars import bar_figure

    pictures = []
    for scenario in dict.fromkeys(m.scenario for m in found):
        of = [m for m in found if m.scenario == scenario and m.metric_value is not None]
        if len(of) < 2:
            continue
        name = next((m.metric_name for m in of if m.metric_name), "metric")
        unit = next((m.metric_unit for m in of if m.metric_unit), "") or ""
        for key in keys:
            categories = list(dict.fromkeys(_shown(m.values.get(key)) for m in of))
            if len(categories) < 2:
                continue
            others = [k for k in keys if k != key]
            series: dict[str, list[float | None]] = {}
            for m in of:
                label = ", ".join(f"{k}={_shown(m.values.get(k))}" for k in others) or name
                row = series.setdefault(label, [None] * len(categories))
                row[categories.index(_shown(m.values.get(key)))] = m.metric_value
            title = f"{scenario}: {name} across {key} (LoadGen)"
            figure, drawn = bar_figure(title, unit, [f"{key}={c}" for c in categories],
                                       series, value_format=_value_text)
            better = "higher" if higher_is_better(unit) else "lower"
            alt = f"{title}, {better} is better: " + "; ".join(
                f"{label}: " + ", ".join(f"{key}={c} {v:.4g}" for c, v in
                                         zip(categories, heights, strict=True)
                                         if v is not None)
                for label, heights in drawn.items()) + f" {unit}".rstrip()
            pictures.append(Picture(
                name=f"sweep-{scenario.lower()}-{_file_part(key)}.png", kind="sweep-key",
                title=title, alt=alt, png=_png(figure), scenario=scenario))
    return pictures


def pareto_pictures(found: Sequence[Measure]) -> list[Picture]:
    """Per scenario where throughput and p99 latency both vary over the points:
    throughput against latency, the Pareto front highlighted and joined."""
    from matplotlib.figure import Figure

    pictures = []
    for scenario in dict.fromkeys(m.scenario for m in found):
        of = [m for m in found if m.scenario == scenario and m.throughput is not None
              and m.p99_ms is not None]
        if len({m.throughput for m in of}) < 2 or len({m.p99_ms for m in of}) < 2:
            continue
        pairs = [(float(m.throughput), float(m.p99_ms)) for m in of]  # type: ignore[arg-type]
        front = pareto_front(pairs)
        figure = Figure(figsize=(6.4, 4.0), dpi=90, layout="constrained")
        axes = figure.add_subplot()
        rest = [i for i in range(len(of)) if i not in front]
        if rest:
            axes.scatter([pairs[i][1] for i in rest], [pairs[i][0] for i in rest],
                         color=_OTHER, s=30, zorder=2, label="dominated point")
        axes.plot([pairs[i][1] for i in front], [pairs[i][0] for i in front], color=_FRONT,
                  marker="o", drawstyle="steps-post", zorder=3, label="Pareto front")
        for i, m in enumerate(of):
            # points that (nearly) coincide get their labels stacked, not overprinted
            stacked = _near_earlier(pairs, i)
            axes.annotate(f"{m.point}\n{m.label}", (pairs[i][1], pairs[i][0]), fontsize=6,
                          textcoords="offset points", xytext=(4, 4 - 16 * stacked),
                          color=_FRONT if i in front else "#455a64")
        title = f"{scenario}: throughput vs p99 latency over the sweep's points"
        axes.set_xlabel("p99 latency (ms, LoadGen)")
        axes.set_ylabel("samples/s (LoadGen)")
        axes.set_title(title, fontsize=10)
        axes.margins(0.2)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        alt = (f"{title}; on the front: " + ", ".join(
            f"{of[i].point} ({of[i].label}) {pairs[i][0]:.4g} samples/s at "
            f"{pairs[i][1]:.4g} ms" for i in front)
            + (f"; dominated: {', '.join(of[i].point for i in rest)}" if rest else ""))
        pictures.append(Picture(name=f"sweep-{scenario.lower()}-pareto.png",
                                kind="sweep-pareto", title=title, alt=alt,
                                png=_png(figure), scenario=scenario))
    return pictures


def sweep_section(state: SweepState, tests: Sequence[StoredTestLike]) -> SweepSection:
    """The report's sweep section: the points, the best per scenario, the pictures."""
    found = measures(state, tests)
    keys = swept_keys(state)
    best = [BestRow(scenario=m.scenario, point=m.point, settings=m.label or "(base)",
                    command=shlex.join(m.command), metric=_metric_text(m), status=m.status,
                    test_id=m.test_id) for m in best_per_scenario(found)]
    counts: dict[str, int] = {}
    for point in state.points:
        counts[point.status] = counts.get(point.status, 0) + 1
    notes = []
    missing = [p.id for p in state.points if not p.test_ids]
    if missing:
        notes.append(f"no stored test for {', '.join(missing)} (failed, in flight or not "
                     "merged yet: `mlperf-pilot sweep status` merges the finished jobs)")
    if any(m.status != RunStatus.VALID.value for m in best):
        notes.append("no VALID test in some scenario: its best is among the tests that "
                     "have a number")
    fronts = pareto_pictures(found)
    if not fronts and found:
        notes.append("no Pareto front: throughput and p99 latency do not both vary over "
                     "the points of any scenario")
    return SweepSection(
        sweep_id=state.sweep_id, executor=state.executor.kind, keys=keys,
        counts=", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        points=len(state.points), best=best, pictures=key_pictures(found, keys),
        fronts=fronts, notes=notes)


def _metric_text(m: Measure) -> str:
    if m.metric_value is None:
        return "no result"
    better = "higher" if higher_is_better(m.metric_unit) else "lower"
    return f"{m.metric_name or 'result'} {m.metric_value:.4g} {m.metric_unit or ''}".rstrip() \
        + f" ({better} is better)"


def _throughput(record: Any) -> float | None:
    loadgen = record.loadgen
    if loadgen is None:
        return None
    scenario = record.scenario
    if scenario is Scenario.OFFLINE:
        return loadgen.samples_per_second
    if scenario is Scenario.SERVER:
        return loadgen.completed_samples_per_sec
    if scenario is Scenario.SINGLE_STREAM:  # one sample per query
        return loadgen.qps_with_loadgen_overhead
    return None  # MultiStream: its samples/s is not what LoadGen judges


def _p99_ms(record: Any) -> float | None:
    loadgen = record.loadgen
    if loadgen is None:
        return None
    tiles = loadgen.query_latency_percentiles_ns if record.scenario is \
        Scenario.MULTI_STREAM else loadgen.latency_percentiles_ns
    for key, ns in tiles.items():
        try:
            if abs(float(key) - 99.0) < 1e-6:
                return float(ns) / 1e6
        except ValueError:
            continue
    return None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    return "-" if value is None else str(value)


def _file_part(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key)


__all__ = ["Measure", "best_per_scenario", "higher_is_better", "key_pictures", "measures",
           "pareto_front", "pareto_pictures", "sweep_section", "swept_keys"]

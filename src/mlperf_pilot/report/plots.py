"""The report's pictures: PNG bytes drawn on matplotlib's Agg canvas (``Figure``, no
pyplot). Pure functions of latencies and rows; nothing here reads a store or writes a file.

- :func:`latency_picture`: a performance test's latency distribution. With per-sample
  values (LoadGen's trace) a histogram and a CDF, with the percentiles LoadGen reported
  marked on both (the one the scenario is judged at in red, Server's bound dashed).
  Without them, the percentile points LoadGen's summary reports, drawn as points and
  labelled so ("no per-query data"): never a made-up distribution.
- :func:`throughput_picture`: completed samples per second over the test, from the
  trace's completion times, with LoadGen's reported throughput as a line.
- :func:`comparison_pictures`: bar charts comparing tests per scenario, the headline
  metric and the p50/p90/p99 latencies (:func:`mlperf_pilot.report.bars.bar_figure`,
  the serverless sweep's bars).

matplotlib comes with the ``report`` extra; :func:`require_matplotlib` names it.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlperf_pilot.extras import import_extra

if TYPE_CHECKING:
    from mlperf_pilot.report.latencies import Latencies, SampleTimes

_DPI = 90
_HEADLINE = "#c62828"
_MARK = "#455a64"


@dataclasses.dataclass(frozen=True)
class Picture:
    """One PNG: its file name, title, alt text (what it shows, in words) and bytes."""

    name: str
    kind: str  # latency | throughput | compare-metric | compare-latency
    title: str
    alt: str
    png: bytes
    test_id: str | None = None  # the test it is of (None: a comparison)
    scenario: str | None = None


@dataclasses.dataclass(frozen=True)
class CompareRow:
    """One performance test in a comparison: its label on the x axis and its numbers."""

    label: str
    scenario: str
    metric_name: str | None
    metric_value: float | None
    metric_unit: str | None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None


def require_matplotlib() -> None:
    import_extra("matplotlib", package="matplotlib", extra="report",
                 purpose="the report's charts")


def latency_picture(name: str, title: str, latencies: Latencies, *,
                    test_id: str | None = None, scenario: str | None = None) -> Picture:
    from matplotlib.figure import Figure

    per = latencies.per
    if latencies.values_ms is not None and latencies.values_ms.size:
        figure = Figure(figsize=(10.0, 3.6), dpi=_DPI, layout="constrained")
        hist, cdf = figure.subplots(1, 2)
        _histogram(hist, latencies)
        _cdf(cdf, latencies)
        figure.suptitle(title, fontsize=10)
        alt = (f"latency histogram and CDF of {latencies.values_ms.size} {_plural(per)} (LoadGen "
               f"trace), percentiles marked: {_marks_text(latencies)}")
    else:
        figure = Figure(figsize=(6.4, 3.6), dpi=_DPI, layout="constrained")
        axes = figure.add_subplot()
        _summary_points(axes, latencies)
        axes.set_title(f"{title}\npercentile points of LoadGen's summary "
                       "(no per-query data: run with --trace)", fontsize=9)
        alt = f"latency percentiles from LoadGen's summary: {_marks_text(latencies)}"
    return Picture(name=name, kind="latency", title=title, alt=alt, png=_png(figure),
                   test_id=test_id, scenario=scenario)


def _histogram(axes: Any, latencies: Latencies) -> None:
    import numpy as np

    values = latencies.values_ms
    assert values is not None
    top = float(np.percentile(values, 99.9)) if values.size > 100 else float(values.max())
    shown = values[values <= top]
    count = min(60, max(10, int(np.sqrt(shown.size))))
    logarithmic = _spread(shown) > 50  # a long tail: bins even on a log scale
    bins = np.geomspace(float(shown[shown > 0].min()), top, count + 1) if logarithmic \
        else count
    axes.hist(shown, bins=bins, color="#90caf9", edgecolor="#1e88e5", linewidth=0.4)
    if logarithmic:
        axes.set_xscale("log")
    beyond = int(values.size - shown.size)
    if beyond:
        axes.text(0.98, 0.80, f"{beyond} beyond p99.9 not shown", ha="right", va="top",
                  fontsize=7, color="grey", transform=axes.transAxes)
    _vertical_marks(axes, latencies, label_y=0.98)
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel(_plural(latencies.per))
    axes.set_title(f"histogram of {values.size} {latencies.per} latencies", fontsize=9)


def _cdf(axes: Any, latencies: Latencies) -> None:
    import numpy as np

    values = latencies.values_ms
    assert values is not None
    fraction = np.arange(1, values.size + 1) / values.size * 100
    axes.step(values, fraction, where="post", color="#1e88e5", linewidth=1.2,
              label="trace (every " + latencies.per + ")")
    axes.scatter([m.ms for m in latencies.marks], [m.percent for m in latencies.marks],
                 color=[_HEADLINE if m.headline else _MARK for m in latencies.marks],
                 zorder=3, s=18, label="LoadGen's percentiles")
    _marks_box(axes, latencies)
    if latencies.bound_ms:
        axes.axvline(latencies.bound_ms, color=_HEADLINE, linestyle="--", linewidth=1,
                     label=f"latency bound {latencies.bound_ms:.3g} ms")
    axes.set_xscale("log" if _spread(values) > 50 else "linear")
    axes.set_ylim(0, 101)
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel(f"% of {_plural(latencies.per)} at or below")
    axes.set_title("CDF", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")


def _summary_points(axes: Any, latencies: Latencies) -> None:
    marks = latencies.marks
    axes.plot([m.ms for m in marks], [m.percent for m in marks], linestyle=":",
              color=_MARK, linewidth=1)
    axes.scatter([m.ms for m in marks], [m.percent for m in marks],
                 color=[_HEADLINE if m.headline else _MARK for m in marks], zorder=3,
                 label="LoadGen's reported percentiles")
    _marks_box(axes, latencies)
    for value, label in ((latencies.min_ms, "min"), (latencies.mean_ms, "mean"),
                         (latencies.max_ms, "max")):
        if value is not None:
            axes.axvline(value, color="#9e9e9e", linestyle="--", linewidth=0.8)
            axes.text(value, 2, f" {label}", fontsize=7, color="#616161", rotation=90,
                      va="bottom")
    if latencies.bound_ms:
        axes.axvline(latencies.bound_ms, color=_HEADLINE, linestyle="--", linewidth=1,
                     label=f"latency bound {latencies.bound_ms:.3g} ms")
    axes.set_ylim(0, 101)
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("percentile")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")


def _marks_box(axes: Any, latencies: Latencies) -> None:
    """LoadGen's percentiles as a list in the upper left (the one judged marked *)."""
    if not latencies.marks:
        return
    lines = [f"{m.label}{'*' if m.headline else ''}  {_ms_text(m.ms)}" for m in latencies.marks]
    axes.text(0.02, 0.97, "LoadGen:\n" + "\n".join(lines), transform=axes.transAxes,
              fontsize=7, va="top", ha="left", family="monospace",
              bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85,
                    "edgecolor": "#bdbdbd"})


def _vertical_marks(axes: Any, latencies: Latencies, *, label_y: float) -> None:
    right = axes.get_xlim()[1]
    for mark in latencies.marks:
        if mark.ms > right:  # beyond the bins drawn (p99.9 of a long tail)
            continue
        colour = _HEADLINE if mark.headline else _MARK
        axes.axvline(mark.ms, color=colour, linewidth=0.8,
                     linestyle="-" if mark.headline else ":")
        axes.text(mark.ms, label_y, f" {mark.label}", color=colour, fontsize=7,
                  rotation=90, va="top", transform=axes.get_xaxis_transform())
    if latencies.bound_ms:
        axes.axvline(latencies.bound_ms, color=_HEADLINE, linestyle="--", linewidth=1)


def _plural(per: str) -> str:
    return "queries" if per == "query" else f"{per}s"


def _spread(values: Any) -> float:
    low = float(values[values > 0].min()) if (values > 0).any() else 0.0
    return float(values.max()) / low if low else 0.0


def _marks_text(latencies: Latencies) -> str:
    return ", ".join(f"{m.label} {_ms_text(m.ms)}" for m in latencies.marks) or "none logged"


def _value_text(value: float) -> str:
    """A bar's label: ``0.197``, ``12.4``, ``21,880``."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _ms_text(ms: float) -> str:
    """``0.197 ms``, ``12.4 ms``, ``21,880 ms``."""
    return f"{ms:,.0f} ms" if ms >= 1000 else f"{ms:.3g} ms"


def throughput_picture(name: str, title: str, times: SampleTimes, *,
                       reported: float | None, unit: str | None,
                       test_id: str | None = None, scenario: str | None = None
                       ) -> Picture | None:
    """Completed samples per second in bins over the test; None with under two bins."""
    import numpy as np
    from matplotlib.figure import Figure

    done = np.sort(times.completed_s)
    start = float(times.scheduled_s.min())
    span = float(done[-1]) - start
    if span <= 0 or done.size < 2:
        return None
    width = max(span / 40, 0.01)
    edges = np.arange(start, float(done[-1]) + width, width)
    if edges.size < 3:
        return None
    counts, _ = np.histogram(done, bins=edges)
    figure = Figure(figsize=(6.4, 3.2), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.step(edges[:-1] - start, counts / width, where="post", color="#2e7d32",
              label=f"completed samples/s ({width * 1000:.3g} ms bins, trace)")
    if reported and unit and unit.lower().startswith("samples/s"):
        axes.axhline(reported, color=_HEADLINE, linestyle="--", linewidth=1,
                     label=f"LoadGen's result {reported:.4g} {unit}")
    axes.set_xlabel("time since the test began (s)")
    axes.set_ylabel("samples/s")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    alt = (f"completed samples per second over {span:.3g} s, {counts.size} bins, mean "
           f"{done.size / span:.4g} samples/s")
    return Picture(name=name, kind="throughput", title=title, alt=alt, png=_png(figure),
                   test_id=test_id, scenario=scenario)


def comparison_pictures(rows: Sequence[CompareRow]) -> list[Picture]:
    """Per scenario with two tests or more: the headline metric per test and the
    p50/p90/p99 latencies per test (LoadGen's numbers)."""
    from mlperf_pilot.report.bars import bar_figure

    pictures: list[Picture] = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        of = [r for r in rows if r.scenario == scenario]
        if len(of) < 2:
            continue
        labels = [r.label for r in of]
        unit = next((r.metric_unit for r in of if r.metric_unit), "") or ""
        name = next((r.metric_name for r in of if r.metric_name), "metric") or "metric"
        title = f"{scenario}: {name} per test (LoadGen)"
        horizontal = len(labels) > 6 or max(len(label) for label in labels) > 16
        if horizontal:
            labels = [label.replace("\n", " · ") for label in labels]
        figure, drawn = bar_figure(title, unit, labels, {name: [r.metric_value for r in of]},
                                   value_format=_value_text, horizontal=horizontal)
        pictures.append(Picture(name=f"compare-metric-{scenario.lower()}.png",
                                kind="compare-metric", title=title,
                                alt=f"{title}: " + _bars_text(labels, drawn, unit),
                                png=_png(figure), scenario=scenario))
        latency = {"p50": [r.p50_ms for r in of], "p90": [r.p90_ms for r in of],
                   "p99": [r.p99_ms for r in of]}
        if any(v is not None for values in latency.values() for v in values):
            title = f"{scenario}: latency percentiles per test (LoadGen)"
            figure, drawn = bar_figure(title, "ms", labels, latency, value_format=_value_text,
                                       horizontal=horizontal)
            pictures.append(Picture(name=f"compare-latency-{scenario.lower()}.png",
                                    kind="compare-latency", title=title,
                                    alt=f"{title}: " + _bars_text(labels, drawn, "ms"),
                                    png=_png(figure), scenario=scenario))
    return pictures


def _bars_text(labels: Sequence[str], drawn: dict[str, list[float | None]], unit: str) -> str:
    parts = []
    for series, heights in drawn.items():
        cells = [f"{label.replace(chr(10), ' ')} {h:.4g}"
                 for label, h in zip(labels, heights, strict=True) if h is not None]
        parts.append(f"{series}: " + ", ".join(cells) + f" {unit}".rstrip())
    return "; ".join(parts)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


__all__ = ["CompareRow", "Picture", "comparison_pictures", "latency_picture",
           "require_matplotlib", "throughput_picture"]

"""The serverless sweep's bar charts (PNG, drawn by :func:`mlperf_pilot.report.bars.bar_figure`
on matplotlib's Agg canvas; no pyplot, so no global backend is switched and nothing opens a
window).

Per scenario measured: ``latency-<scenario>.png`` (LoadGen's p50 and p90 per memory
size, a pair of bars per engine) and ``qps-<scenario>.png`` (throughput per memory size,
a bar per engine); once: ``function-breakdown.png`` (the function side of each point: an
instance's cold ``load_model``, ``image_operations`` and ``forward``, and the warm
answers' means, from the SingleStream test where there is one). Each :class:`Chart`
carries the bars' heights read back from the drawn figure, which ``sweep.json`` keeps.
matplotlib is imported when a chart is drawn (ImportError when it is not installed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlperf_pilot.serverless.sweep import SweepPoint, SweepRow

BREAKDOWN = (("cold load_model", "cold_load_model_ms"),
             ("cold image_operations", "cold_image_operations_ms"),
             ("cold forward", "cold_forward_ms"),
             ("warm image_operations", "warm_image_operations_ms"),
             ("warm forward", "warm_forward_ms"))


@dataclasses.dataclass(frozen=True)
class Chart:
    """One PNG: its categories (x) and each series' bar heights as drawn (None: no bar)."""

    path: Path
    kind: str  # latency | qps | breakdown
    scenario: str | None
    title: str
    unit: str
    categories: list[str]
    series: dict[str, list[float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "kind": self.kind, "scenario": self.scenario,
                "title": self.title, "unit": self.unit, "categories": self.categories,
                "series": self.series}


def draw_charts(points: Sequence[SweepPoint], out: Path) -> list[Chart]:
    """Every chart the points have numbers for, written into ``out``."""
    rows = [row for point in points for row in point.rows if row.performance]
    engines = list(dict.fromkeys(p.backend for p in points))
    sizes = list(dict.fromkeys(p.memory_mb for p in points))
    categories = [f"{m} MB" for m in sizes]
    charts: list[Chart] = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        of = {(r.backend, r.memory_mb): r for r in rows if r.scenario == scenario}
        latency: dict[str, list[float | None]] = {}
        qps: dict[str, list[float | None]] = {}
        for engine in engines:
            cells = [of.get((engine, m)) for m in sizes]
            latency[f"{engine} p50"] = [r.p50_ms if r else None for r in cells]
            latency[f"{engine} p90"] = [r.p90_ms if r else None for r in cells]
            qps[engine] = [r.qps if r else None for r in cells]
        name = scenario.lower()
        charts.append(_bars(out / f"latency-{name}.png", "latency", scenario,
                            f"{scenario}: end-to-end latency (LoadGen) per memory size",
                            "ms", categories, latency))
        unit = next((r.qps_unit for r in of.values() if r.qps_unit), "") or ""
        charts.append(_bars(out / f"qps-{name}.png", "qps", scenario,
                            f"{scenario}: throughput (LoadGen) per memory size", unit,
                            categories, qps))
    breakdown = _breakdown_rows(points)
    if breakdown:
        labels = [f"{r.memory_mb} MB" if len(engines) == 1 else f"{r.backend}\n{r.memory_mb} MB"
                  for r in breakdown]
        series = {label: [r.function.get(key) for r in breakdown] for label, key in BREAKDOWN}
        scenarios = sorted({r.scenario for r in breakdown})
        charts.append(_bars(out / "function-breakdown.png", "breakdown", None,
                            "function side per memory size (inf_perf, "
                            f"{'/'.join(scenarios)} answers)", "ms", labels, series,
                            log=True))
    return charts


def _breakdown_rows(points: Sequence[SweepPoint]) -> list[SweepRow]:
    """Per point, the performance test whose answers describe one sample best: the
    SingleStream one, else the first with function timings."""
    chosen = []
    for point in points:
        rows = [r for r in point.rows if r.performance and r.function]
        rows.sort(key=lambda r: r.scenario != "SingleStream")
        if rows:
            chosen.append(rows[0])
    return chosen


def _bars(path: Path, kind: str, scenario: str | None, title: str, unit: str,
          categories: list[str], series: dict[str, list[float | None]], *,
          log: bool = False) -> Chart:
    from mlperf_pilot.report.bars import bar_figure

    figure, drawn = bar_figure(title, unit, categories, series, log=log)
    figure.savefig(path, format="png")
    return Chart(path=path, kind=kind, scenario=scenario, title=title, unit=unit,
                 categories=list(categories), series=drawn)


__all__ = ["Chart", "draw_charts"]

"""Grouped bar charts on matplotlib's Agg canvas (``Figure``, no pyplot: no global backend
is switched and nothing opens a window), shared by ``report`` and the serverless sweep's
charts: categories on x, a bar per series in each, the value on top of each bar, "no
result" where a category has no bar at all. :func:`drawn_heights` reads the heights back
from the drawn axes, so what a caller records is what the picture shows. matplotlib is
imported when a chart is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def bar_figure(title: str, unit: str, categories: Sequence[str],
               series: dict[str, list[float | None]], *, log: bool = False,
               value_format: str | Callable[[float], str] = "%.1f", horizontal: bool = False
               ) -> tuple[Any, dict[str, list[float | None]]]:
    """The figure and the bars' heights as drawn (per series label; None: no bar).
    ``horizontal``: categories down the y axis (many or long labels stay readable)."""
    from matplotlib.figure import Figure

    count = max(1, len(series))
    if horizontal:
        size = (9.5, max(3.0, 0.9 + 0.28 * len(categories) * count))
    else:
        size = (max(6.0, 1.2 * len(categories) * count / 2), 4.2)
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / count
    for i, (label, values) in enumerate(series.items()):
        heights = [math.nan if v is None else float(v) for v in values]
        offsets = [x - 0.4 + width * (i + 0.5) for x in range(len(categories))]
        if horizontal:
            bars = axes.barh(offsets, heights, height=width, label=label)
        else:
            bars = axes.bar(offsets, heights, width=width, label=label)
        axes.bar_label(bars, fmt=value_format, fontsize=7, padding=1)
    for x in range(len(categories)):  # a category without numbers (failed) says so
        if all(values[x] is None for values in series.values()):
            if horizontal:
                axes.text(0.02, x, "no result", ha="left", va="center", fontsize=8,
                          color="grey", transform=axes.get_yaxis_transform())
            else:
                axes.text(x, 0.02, "no result", ha="center", va="bottom", fontsize=8,
                          color="grey", transform=axes.get_xaxis_transform())
    if horizontal:
        axes.set_yticks(range(len(categories)), list(categories), fontsize=7)
        axes.invert_yaxis()  # the first category on top
        axes.set_xlabel(unit)
        axes.margins(x=0.15)
        axes.grid(axis="x", alpha=0.3)
    else:
        axes.set_xticks(range(len(categories)), list(categories))
        axes.set_ylabel(unit)
        axes.margins(y=0.15)  # room for the labels and the legend above the tallest bar
        axes.grid(axis="y", alpha=0.3)
    axes.set_title(title, fontsize=10)
    if log:
        if horizontal:
            axes.set_xscale("log")
        else:
            axes.set_yscale("log")
    axes.legend(fontsize=8)
    return figure, drawn_heights(axes)


def drawn_heights(axes: Any) -> dict[str, list[float | None]]:
    """The heights of the bars on ``axes``, per series label, as matplotlib holds them."""
    from matplotlib.container import BarContainer

    drawn: dict[str, list[float | None]] = {}
    for container in axes.containers:
        if isinstance(container, BarContainer):
            drawn[str(container.get_label())] = [
                None if math.isnan(h := _length(patch, container)) else round(float(h), 6)
                for patch in container.patches]
    return drawn


def _length(patch: Any, container: Any) -> float:
    """A bar's value: its height, or its width when the bars are horizontal."""
    horizontal = getattr(container, "orientation", "vertical") == "horizontal"
    return patch.get_width() if horizontal else patch.get_height()


__all__ = ["bar_figure", "drawn_heights"]

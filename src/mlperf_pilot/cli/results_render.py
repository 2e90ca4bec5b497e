"""How `results list`/`show`/`compare` look: the report's typed rows drawn as rich
tables (the data comes from report.tables and report.compare; nothing is computed
here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from mlperf_pilot.report.compare import Column, Comparison
from mlperf_pilot.report.tables import (
    LIST_COLUMNS,
    ListRow,
    ShowView,
    list_cells,
    number_text,
    percentile_label,
)

_STATUS_STYLES = {"VALID": "green", "INVALID": "yellow", "FAILED": "red"}


def list_table(rows: Sequence[ListRow], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in LIST_COLUMNS:
        table.add_column(column, no_wrap=True)
    for row in rows:
        cells: list[Any] = list_cells(row)
        status_at = LIST_COLUMNS.index("Status")
        cells[status_at] = Text(row.status, style=_STATUS_STYLES.get(row.status, ""))
        table.add_row(*cells)
    return table


def view_tables(view: ShowView) -> list[Table]:
    """One two-column table per section of the view."""
    tables = []
    for section in view.sections:
        if not section.items:
            continue
        table = Table(title=section.title, title_justify="left", show_header=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value")
        for name, value in section.items:
            style = _STATUS_STYLES.get(value, "") if name == "status" else ""
            table.add_row(name, Text(value, style=style))
        tables.append(table)
    return tables


def _ratio_text(column: Column) -> str:
    if column.ratio is None:
        return "-"
    return f"{column.ratio:.3f}x"


def _verdict_text(column: Column, first: bool) -> Text:
    if first:
        return Text("baseline")
    if column.note:
        return Text(column.note, style="dim")
    if column.worse_by is None:
        return Text("-")
    if column.regression:
        return Text(f"REGRESSION: {_by(column.worse_by)} worse", style="red bold")
    if column.worse_by > 0:
        return Text(f"{_by(column.worse_by)} worse, within the noise", style="yellow")
    return Text(f"{_by(-column.worse_by)} better", style="green")


def _by(fraction: float) -> str:
    """``12.3%``, or ``20.7x`` from 100 % on."""
    return f"{fraction + 1:.1f}x" if fraction >= 1 else f"{fraction:.1%}"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)


def compare_tables(comparison: Comparison) -> list[Table]:
    columns = comparison.columns
    table = Table(title="comparison (the first test is the baseline)", title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    for index, _column in enumerate(columns):
        table.add_column(f"#{index + 1}", overflow="fold")
    rows: list[tuple[str, list[Any]]] = [
        ("test", [c.test_id for c in columns]),
        ("model", [c.model for c in columns]),
        ("SUT", [f"{c.sut} {c.device}" for c in columns]),
        ("scenario", [f"{c.scenario} {c.mode}" for c in columns]),
        ("status", [Text(c.status, style=_STATUS_STYLES.get(c.status, ""))
                    for c in columns]),
        ("metric", [f"{c.metric_name or '-'} ({'lower' if c.lower_is_better else 'higher'}"
                    " is better)" if c.metric_name else "-" for c in columns]),
        ("value", [number_text(c.metric_value, c.metric_unit) for c in columns]),
        ("ratio to #1", [_ratio_text(c) for c in columns]),
        ("verdict", [_verdict_text(c, index == 0) for index, c in enumerate(columns)]),
        ("noise used", [c.noise.describe() if c.noise else "-" for c in columns]),
    ]
    for key in comparison.percentiles:
        rows.append((f"{percentile_label(key)} latency", [
            number_text(c.percentiles_ns[key] / 1e6, "ms") if key in c.percentiles_ns
            else "-" for c in columns]))
    rows.append(("accuracy", [f"{c.accuracy:.3f}% {c.accuracy_metric}"
                              if c.accuracy is not None else "-" for c in columns]))
    for name, cells in rows:
        table.add_row(name, *cells)
    tables = [table]
    for title, differences in (("settings that differ", comparison.settings),
                               ("versions that differ", comparison.versions)):
        if not differences:
            continue
        diff = Table(title=title, title_justify="left")
        diff.add_column("key", no_wrap=True)
        for index, _column in enumerate(columns):
            diff.add_column(f"#{index + 1}", overflow="fold")
        for difference in differences:
            diff.add_row(difference.key, *(_value(value) for value in difference.values))
        tables.append(diff)
    return tables


def compare_footer(comparison: Comparison) -> list[str]:
    """A line per regression, or one saying there is none."""
    if len(comparison.columns) < 2:
        return []
    first = comparison.columns[0]
    lines = []
    for column in comparison.regressions:
        noise = column.noise.describe() if column.noise else "-"
        lines.append(f"regression: {column.test_id} is {_by(column.worse_by or 0.0)} worse than "
                     f"{first.test_id}, beyond the noise {noise}")
    if not lines:
        lines.append("no regression against the baseline beyond the noise seen")
    if not comparison.settings:
        lines.append("settings: the same for every test")
    return lines


__all__ = ["compare_footer", "compare_tables", "list_table", "view_tables"]

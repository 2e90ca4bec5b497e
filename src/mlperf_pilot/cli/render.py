"""Everything the CLI draws: progress bars on stderr, tables on stdout."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.vocab import ComplianceStatus, ExecutionMode, RunStatus


class RichTask:
    def __init__(self, owner: RichProgress, description: str, total: float | None) -> None:
        self._owner = owner
        self._description = description
        self._total = total
        self._id: TaskID | None = None

    def __enter__(self) -> RichTask:
        self._id = self._owner.live().add_task(self._description, total=self._total)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live = self._owner.live()
        if self._id is not None:
            task = live.tasks[[t.id for t in live.tasks].index(self._id)]
            if exc_type is None and task.total is None:
                done = max(task.completed, 1)
                live.update(self._id, total=done, completed=done)
            elif exc_type is None and task.total is not None:
                live.update(self._id, completed=task.total)
            live.stop_task(self._id)
        self._owner.task_done()

    def advance(self, amount: float = 1) -> None:
        if self._id is not None:
            self._owner.live().advance(self._id, amount)

    def update(
        self, *, completed: float | None = None, total: float | None = None,
        description: str | None = None,
    ) -> None:
        if self._id is None:
            return
        kwargs: dict[str, Any] = {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._owner.live().update(self._id, **kwargs)


class RichProgress:
    """The Progress protocol drawn with rich on stderr (silent when not a terminal
    unless ``force``); ``run_note`` prints a run's note when it happens (the CLI's
    listener, engine.events.ProgressObserver, calls it). Bars: done/total (LoadGen's
    planned samples for a performance test), elapsed and remaining time."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Progress | None = None
        self._open = 0

    def live(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self.console,
                disable=not self.enabled, transient=False,
            )
            self._progress.start()
        return self._progress

    def task(self, description: str, total: float | None = None, unit: str = "") -> RichTask:
        self._open += 1
        return RichTask(self, description, total)

    def task_done(self) -> None:
        self._open -= 1

    def note(self, message: str) -> None:
        self.live().console.print(Text(message, style="dim"), highlight=False)

    def run_note(self, message: str) -> None:
        self.live().console.print(Text.assemble(("note:", "yellow"), f" {message}"),
                                  highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _metric_text(record: RunRecord) -> str:
    if record.metric_value is None:
        return "-"
    value = record.metric_value
    shown = f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return f"{shown} {record.metric_unit or ''}".strip()


def accuracy_text(record: RunRecord) -> str:
    """``0.000% top1 — below the closed-division target 75.695%`` (or "meets")."""
    accuracy = record.accuracy
    if accuracy is None:
        return "-"
    text = f"{accuracy.value:.3f}% {accuracy.metric}"
    if accuracy.target is not None and accuracy.meets_target is not None:
        verdict = "meets" if accuracy.meets_target else "below"
        text += f" — {verdict} the closed-division target {accuracy.target:.3f}%"
    return text


def status_text(record: RunRecord) -> str:
    """LoadGen's verdict and whether the result is submittable: ``VALID (test run — not
    submittable)``; the reasons are :func:`submittable_line`'s. Records of earlier
    versions (no execution mode) show the verdict alone."""
    if record.execution_mode is None:
        return record.status.value
    if record.submittable:
        return f"{record.status.value} (submittable)"
    what = f"{record.execution_mode.value} run — " \
        if record.execution_mode is not ExecutionMode.VALID else ""
    return f"{record.status.value} ({what}not submittable)"


def submittable_line(record: RunRecord) -> str | None:
    """``Offline performance: VALID (test run — not submittable: min duration 0.3 s <
    600 s, ...)``, or None for a submittable record or one of an earlier version."""
    if record.execution_mode is None or record.submittable:
        return None
    from mlperf_pilot.results.submittable import SHOWN_BY_STATUS

    reasons = [r for r in record.not_submittable if r not in SHOWN_BY_STATUS]
    what = f"{record.execution_mode.value} run — " \
        if record.execution_mode is not ExecutionMode.VALID else ""
    return (f"{record.scenario.value} {record.mode.value}: {record.status.value} "
            f"({what}not submittable: {', '.join(reasons) or 'see the reasons above'})")


def next_step(records: Sequence[RunRecord]) -> str | None:
    """The footer: what to run next on the way to a submission."""
    modes = {r.execution_mode for r in records if r.execution_mode is not None}
    if not modes:
        return None
    if ExecutionMode.TEST in modes:
        return ("next: calibrate with `--execution-mode find`, then run "
                "`--execution-mode valid`, then `mlperf-pilot submission generate`")
    if ExecutionMode.FIND in modes:
        return ("next: run `--execution-mode valid` (it uses the targets just found), then "
                "`mlperf-pilot submission generate`")
    if all(r.submittable for r in records):
        return "next: `mlperf-pilot submission generate` (then `submission check`)"
    return ("next: fix what makes the results above not submittable, rerun with "
            "`--execution-mode valid`, then `mlperf-pilot submission generate`")


def recorded_lines(run_id: str | None, test_ids: Sequence[str],
                   store: Path | None) -> list[str]:
    """The footer naming the run, its tests in the results store and the command that
    shows their report (``--store`` when the store is not the one found by default)."""
    if not test_ids or store is None:
        return []
    from mlperf_pilot.results.store import store_path

    where = ""
    if Path(store).resolve() != store_path(None).resolve():
        where = f" --store {shlex.quote(str(store))}"
    return [f"Run {run_id}: {len(test_ids)} test(s) recorded in {store}: "
            f"{', '.join(test_ids)}",
            f"see the report: mlperf-pilot report --last {len(test_ids)}{where} "
            f"(one test: mlperf-pilot results show{where} {test_ids[-1]})"]


def results_table(records: Sequence[RunRecord]) -> Table:
    table = Table(title="mlperf-pilot results", title_justify="left")
    for column in ("Model", "Backend", "Device", "Scenario", "Mode", "Metric", "Result",
                   "Status", "Accuracy"):
        table.add_column(column, no_wrap=column not in ("Metric",))
    for record in records:
        status_style = ("green" if record.submittable else "yellow") if record.ok else "red"
        table.add_row(
            record.model, record.backend, record.device, record.scenario.value,
            record.mode.value, record.metric_name or "-", _metric_text(record),
            Text(status_text(record), style=status_style), accuracy_text(record),
        )
    return table


def simple_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


_COMPLIANCE_STYLES = {ComplianceStatus.PASS: "green", ComplianceStatus.INDICATIVE: "yellow"}


def compliance_table(records: Sequence[Any]) -> Table:
    table = Table(title="compliance tests", title_justify="left")
    for column in ("Scenario", "Test", "Status", "Performance", "Accuracy"):
        table.add_column(column)
    for record in records:
        # INDICATIVE: test mode, only a performance band missed (not a verdict, exit 0)
        status = ComplianceStatus(record.status)
        style = _COMPLIANCE_STYLES.get(status, "red")
        perf = _last_line(record.performance_check)
        acc = _last_line(record.accuracy_check)
        table.add_row(str(record.scenario), record.test, Text(status.value, style=style),
                      perf, acc)
    return table


def _last_line(text: str | None) -> str:
    if not text:
        return "-"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "-"


def findings_report(report: Any) -> list[str]:
    """Findings grouped by result, each with its rule and fix (markup-free lines)."""
    lines = []
    if report.tree_findings:
        lines.append("submission:")
        lines += [f"  {f.severity.upper()} [{f.rule}] {f.message}" + (
            f" -> {f.fix}" if f.fix else "") for f in report.tree_findings]
    for verdict in report.verdicts:
        state = (RunStatus.VALID if verdict.valid else RunStatus.INVALID).value
        metric = f" {verdict.metric:.6g}" if verdict.metric is not None else ""
        lines.append(f"{verdict.key}: {state}{metric}")
        for f in verdict.findings:
            lines.append(f"  {f.severity.upper()} [{f.rule}] {f.message}" + (
                f" -> {f.fix}" if f.fix else ""))
    return lines

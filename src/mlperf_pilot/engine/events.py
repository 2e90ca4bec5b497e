"""The run's events: the engine reports through one observer, never by mutating a
summary someone else reads.

A :class:`RunObserver` receives the progress of long steps (``task``, ``note`` — the
:class:`~mlperf_pilot.progress.Progress` protocol library code already uses), the notes
about the run (``run_note``: what a reader of the results should know), what was
prepared (``prepared``: where the model and data came from), each test's record as it
is written (``record``; ``attempt`` for a run a rerun replaced) and each compliance
result. :class:`SummaryCollector` turns the events into the :class:`RunSummary` the
CLI prints; the CLI's progress display is another listener; the results store is a
third (:class:`~mlperf_pilot.engine.recording.StoreRecorder`), without touching the
engine. :class:`Observers` fans one stream out to many.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from mlperf_pilot.compliance.run import ComplianceRecord
    from mlperf_pilot.engine.plan import RunPlan
    from mlperf_pilot.engine.prepare import PreparedRun
    from mlperf_pilot.results.records import RunRecord


class RunObserver:
    """Every event, ignored; listeners override what they need."""

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        return NULL_PROGRESS.task(description, total, unit)

    def note(self, message: str) -> None:
        """A passing status line (e.g. "using cached model ...")."""

    def run_started(self, plan: RunPlan, results_dir: Path) -> None:
        """The run holds its results folder and starts."""

    def prepared(self, run: PreparedRun) -> None:
        """The model, the data and the SUT are ready (sources, provenance)."""

    def run_note(self, message: str) -> None:
        """Something a reader of the results should know (kept in the summary)."""

    def record(self, record: RunRecord) -> None:
        """A test's record, as written (the final one of its scenario and mode)."""

    def attempt(self, record: RunRecord) -> None:
        """A record a rerun or another find probe supersedes (its logs are kept)."""

    def compliance(self, record: ComplianceRecord) -> None:
        """A compliance test's verified result, as written."""

    def targets_file(self, path: Path) -> None:
        """The calibration targets file this run reads or writes."""


class ProgressObserver(RunObserver):
    """A plain :class:`Progress` (bars and status lines) as a listener; with
    ``notes``, each run note is shown as it happens (the CLI's display)."""

    def __init__(self, progress: Progress,
                 notes: Callable[[str], None] | None = None) -> None:
        self.progress = progress
        self._notes = notes

    def run_note(self, message: str) -> None:
        if self._notes is not None:
            self._notes(message)

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        return self.progress.task(description, total, unit)

    def note(self, message: str) -> None:
        self.progress.note(message)


class Observers(RunObserver):
    """One event stream to many listeners, in order. Progress tasks open on each."""

    def __init__(self, *listeners: RunObserver) -> None:
        self.listeners = list(listeners)

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        return _FanTask([o.task(description, total, unit) for o in self.listeners])

    def _each(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)

    def note(self, message: str) -> None:
        self._each("note", message)

    def run_started(self, plan: RunPlan, results_dir: Path) -> None:
        self._each("run_started", plan, results_dir)

    def prepared(self, run: PreparedRun) -> None:
        self._each("prepared", run)

    def run_note(self, message: str) -> None:
        self._each("run_note", message)

    def record(self, record: RunRecord) -> None:
        self._each("record", record)

    def attempt(self, record: RunRecord) -> None:
        self._each("attempt", record)

    def compliance(self, record: ComplianceRecord) -> None:
        self._each("compliance", record)

    def targets_file(self, path: Path) -> None:
        self._each("targets_file", path)


class _FanTask:
    def __init__(self, tasks: list[Any]) -> None:
        self.tasks = tasks
        self._stack = ExitStack()

    def advance(self, amount: float = 1) -> None:
        for task in self.tasks:
            task.advance(amount)

    def update(self, **kwargs: Any) -> None:
        for task in self.tasks:
            task.update(**kwargs)

    def __enter__(self) -> _FanTask:
        for task in self.tasks:
            self._stack.enter_context(task)
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._stack.__exit__(*exc)


@dataclass
class RunSummary:
    """What one run did, as its events told it."""

    records: list[RunRecord]
    results_dir: Path
    system: str
    model_source: str = ""
    dataset_source: str = ""
    notes: list[str] = field(default_factory=list)
    compliance: list[ComplianceRecord] = field(default_factory=list)
    targets_file: Path | None = None
    run_id: str | None = None
    # the results store the tests were recorded in, and their ids (engine.recording)
    store: Path | None = None
    test_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        from mlperf_pilot.compliance.run import OK_STATUSES

        ran = bool(self.records) or bool(self.compliance)
        # INDICATIVE (a test-mode band that short runs cannot judge) is not a failure
        return ran and all(r.ok for r in self.records) and all(
            c.status in OK_STATUSES for c in self.compliance)


class SummaryCollector(RunObserver):
    """Builds the :class:`RunSummary` from the events."""

    def __init__(self, results_dir: Path, system: str, run_id: str | None = None) -> None:
        self.summary = RunSummary(records=[], results_dir=results_dir, system=system,
                                  run_id=run_id)

    def prepared(self, run: PreparedRun) -> None:
        self.summary.model_source = run.sut.model_source
        self.summary.dataset_source = run.dataset_source

    def run_note(self, message: str) -> None:
        self.summary.notes.append(message)

    def record(self, record: RunRecord) -> None:
        self.summary.records.append(record)

    def compliance(self, record: ComplianceRecord) -> None:
        self.summary.compliance.append(record)

    def targets_file(self, path: Path) -> None:
        self.summary.targets_file = path


__all__ = ["Observers", "ProgressObserver", "RunObserver", "RunSummary", "SummaryCollector"]

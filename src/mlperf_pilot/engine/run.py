"""Executing a planned run: under the lock of ``<results>/<system>/<model>/``, prepare
once (engine.prepare), then one :class:`~mlperf_pilot.engine.session.ScenarioSession`
per scenario in its staging folder (results.staging), renamed into place when finished.
Everything the run does is reported to the observer; the summary is one listener, the
results store (engine.recording) another."""

from __future__ import annotations

from pathlib import Path

import httpx

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.calibration import DEFAULT_TARGETS_FILE, TargetsFile
from mlperf_pilot.catalog import Catalog
from mlperf_pilot.config import RunSpec, cache_dir_for
from mlperf_pilot.engine.events import (
    Observers,
    ProgressObserver,
    RunObserver,
    RunSummary,
    SummaryCollector,
)
from mlperf_pilot.engine.launch import Launcher, SubprocessLauncher
from mlperf_pilot.engine.plan import RunPlan, plan_run
from mlperf_pilot.engine.prepare import PreparedRun, prepare_run
from mlperf_pilot.engine.recording import StoreRecorder
from mlperf_pilot.engine.scenario_files import UserConf
from mlperf_pilot.engine.session import Collected, ScenarioSession
from mlperf_pilot.interrupts import Interrupted
from mlperf_pilot.progress import Progress
from mlperf_pilot.results.provenance import new_run_id, utc_now
from mlperf_pilot.results.staging import ResultsLock, RunStages
from mlperf_pilot.storage import is_disk_full, run_disk_full_error
from mlperf_pilot.vocab import ExecutionMode


class Engine:
    """Executes a RunPlan; one instance per run."""

    def __init__(
        self, plan: RunPlan, *, cache: AssetCache | None = None,
        observer: RunObserver | None = None, progress: Progress | None = None,
        launcher: Launcher | None = None, transport: httpx.BaseTransport | None = None,
        command: str | None = None, run_id: str | None = None, kind: str = "run",
    ) -> None:
        self.plan = plan
        self.cache = cache or AssetCache(cache_dir_for(plan.spec))
        self.launcher = launcher or SubprocessLauncher()
        self.transport = transport
        self.command = command
        self.started = utc_now()
        self.run_id = run_id or new_run_id(self.started)
        results_dir = Path(plan.spec.results_dir).resolve()
        self.collector = SummaryCollector(results_dir, plan.system, self.run_id)
        # every test recorded in the results store (``kind``: run, bench, ...) when it ends
        recorder = StoreRecorder(self.collector.summary, store=plan.spec.store, kind=kind,
                                 note=lambda message: self.observer.run_note(message))
        listeners: list[RunObserver] = [self.collector, recorder]
        if progress is not None:
            listeners.append(ProgressObserver(progress))
        if observer is not None:
            listeners.append(observer)
        self.observer = Observers(*listeners)

    @property
    def summary(self) -> RunSummary:
        """What the run did so far (also when it stopped early)."""
        return self.collector.summary

    def run(self) -> RunSummary:
        """Execute the plan. A full disk ends it with an error naming the file that could
        not be written and the finished tests that are kept."""
        plan, spec, summary = self.plan, self.plan.spec, self.summary
        stages = RunStages(summary.results_dir, plan.system, plan.card.name,
                           find=spec.execution_mode is ExecutionMode.FIND, modes=spec.modes)
        try:
            with ResultsLock(summary.results_dir / plan.system / plan.card.name,
                             self.command):
                self.observer.run_started(plan, summary.results_dir)
                self._run(stages)
                return summary
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise run_disk_full_error(
                exc, cache_root=self.cache.root, results_dir=Path(spec.results_dir),
                finished=[f"{r.scenario} {r.mode}" for r in summary.records],
                partial=stages.partial_at,
            ) from exc

    def _run(self, stages: RunStages) -> None:
        plan, spec = self.plan, self.plan.spec
        prepared = prepare_run(plan, cache=self.cache, observer=self.observer,
                               run_id=self.run_id, started=self.started,
                               command=self.command, transport=self.transport)
        targets = TargetsFile(spec.targets_file or DEFAULT_TARGETS_FILE)
        self.observer.targets_file(targets.path.resolve())
        conf = UserConf(plan, prepared.dataset.count, prepared.sut.estimates)
        # what test mode chose for this machine, and a bound out of its reach, before any
        # LoadGen run (valid/find mode: refused here rather than retried)
        for note in conf.check(spec.scenarios):
            self.observer.run_note(note)
        for scenario in spec.scenarios:
            collected = Collected()
            stage = stages.begin(scenario, collected)
            session = ScenarioSession(prepared, scenario, stage, conf, targets,
                                      self.launcher, self.observer, collected)
            try:
                session.run()
            except BaseException as exc:
                # the unfinished scenario's files are kept (results.staging) and an
                # Interrupted carries what the run had finished
                if isinstance(exc, Interrupted) and exc.record is not None:
                    collected.records.append(exc.record)  # the test in flight, marked
                where, previous_kept = stages.keep_partial()
                collected.flush(self.observer)
                if isinstance(exc, Interrupted):
                    exc.summary, exc.partial, exc.previous_kept = \
                        self.summary, where, previous_kept
                raise
            stages.commit()
            collected.flush(self.observer)

    def prepare(self) -> PreparedRun:
        """Only the preparation (dataset, SUT probe), e.g. to inspect it."""
        return prepare_run(self.plan, cache=self.cache, observer=self.observer,
                           run_id=self.run_id, started=self.started, command=self.command,
                           transport=self.transport)


def run_benchmark(
    spec: RunSpec, *, cache: AssetCache | None = None, progress: Progress | None = None,
    catalog: Catalog | None = None, transport: httpx.BaseTransport | None = None,
    observer: RunObserver | None = None, launcher: Launcher | None = None,
    kind: str = "run",
) -> RunSummary:
    """Plan and execute in one call (the Python API's entry point). The spec is layered
    over its card's run_defaults exactly as the CLI's flags are. ``kind``: how the
    results store files its tests (``run``; ``bench`` for the benchmark suite)."""
    plan = plan_run(spec, catalog)
    return Engine(plan, cache=cache, progress=progress, observer=observer, launcher=launcher,
                  transport=transport, kind=kind).run()


__all__ = ["Engine", "run_benchmark"]

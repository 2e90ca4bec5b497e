"""One scenario of a run: its files (user.conf, run_spec.json, versions.json), its
modes, the reruns of an INVALID performance run or the find probes, and its compliance
tests, each LoadGen test a job handed to the launcher.

What the scenario produces (records, compliance records) is collected here while its
staging folder is written and reported to the observer when the folder is in place
(``flush``), so every path an event carries is final. Notes (a rerun and why, no
calibrated target) go out when they happen: they name final paths only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlperf_pilot.calibration import TargetsFile
from mlperf_pilot.engine.calibrate import find, rerun_if_invalid
from mlperf_pilot.engine.job import TestJob
from mlperf_pilot.engine.scenario_files import UserConf, write_scenario_files
from mlperf_pilot.results.staging import ScenarioStage
from mlperf_pilot.vocab import ExecutionMode, Mode, Scenario

if TYPE_CHECKING:
    from mlperf_pilot.compliance.run import ComplianceRecord
    from mlperf_pilot.engine.events import RunObserver
    from mlperf_pilot.engine.launch import Launcher
    from mlperf_pilot.engine.plan import RunPlan
    from mlperf_pilot.engine.prepare import PreparedRun
    from mlperf_pilot.results.layout import ScenarioPaths
    from mlperf_pilot.results.records import RunRecord


@dataclass
class Collected:
    """A scenario's records until its folder is in place (their paths follow the folder;
    notes go out as they happen)."""

    records: list[RunRecord] = field(default_factory=list)
    compliance: list[ComplianceRecord] = field(default_factory=list)
    attempts: list[RunRecord] = field(default_factory=list)

    def flush(self, observer: RunObserver) -> None:
        for record in self.attempts:
            observer.attempt(record)
        for record in self.records:
            observer.record(record)
        for check in self.compliance:
            observer.compliance(check)
        self.attempts, self.records, self.compliance = [], [], []


class ScenarioSession:
    """Runs one scenario of a prepared run in its staging folder."""

    def __init__(self, prepared: PreparedRun, scenario: Scenario, stage: ScenarioStage,
                 conf: UserConf, targets: TargetsFile, launcher: Launcher,
                 observer: RunObserver, collected: Collected) -> None:
        self.prepared, self.scenario, self.stage = prepared, scenario, stage
        self.conf, self.targets, self.launcher = conf, targets, launcher
        self.observer, self.collected = observer, collected

    @property
    def plan(self) -> RunPlan:
        return self.prepared.plan

    @property
    def paths(self) -> ScenarioPaths:
        return self.stage.staging

    def note(self, message: str) -> None:
        """A note, reported now (it must not name the staging folder: see ``final``)."""
        self.observer.run_note(message)

    @property
    def final(self) -> ScenarioPaths:
        """Where the scenario's folder will be once it is in place."""
        return self.stage.final

    def attempt(self, record: RunRecord) -> None:
        self.collected.attempts.append(record)

    def job(self, mode: Mode, **update: Any) -> TestJob:
        """The job of one test now (with the user.conf as it is at this moment)."""
        prepared = self.prepared
        return TestJob(
            run_id=prepared.run_id, model=prepared.model_ref,
            sut=prepared.scenario_sut[self.scenario], system=self.plan.system,
            dataset=prepared.dataset_ref, scenario=self.scenario, mode=mode,
            scenario_root=self.paths.root,
            user_conf=self.paths.user_conf_for(mode).read_text(encoding="utf-8"),
            facts=prepared.submission_facts(self.scenario),
            # the trace of the scenario's own performance tests (not of compliance tests)
            trace=self.plan.spec.trace and mode is Mode.PERFORMANCE and "log_dir" not in update,
            **update,
        )

    def launch(self, mode: Mode, **update: Any) -> RunRecord:
        return self.launcher.launch(self.job(mode, **update), self.observer,
                                    self.prepared.dataset.count)

    def run(self) -> None:
        from mlperf_pilot.compliance.orchestrate import run_compliance

        plan, spec, scenario = self.plan, self.plan.spec, self.scenario
        valid = spec.execution_mode is ExecutionMode.VALID
        calibrated = self.targets.get(plan.system, plan.card.name, scenario) if valid else {}
        if valid and not calibrated and not (spec.loadgen.target_qps
                                             or spec.loadgen.target_latency_ms):
            self.note(f"{scenario.value}: no calibrated target in {self.targets.path}; using "
                      "the warm-up estimate (run --execution-mode find first)")
        used = write_scenario_files(self.conf, self.stage, self.paths, scenario,
                                    self.prepared.provenance(scenario),
                                    self.prepared.versions, calibrated)
        if spec.execution_mode is ExecutionMode.FIND:
            self.collected.records.append(find(self))
            return
        for mode in spec.modes:
            record = self.launch(mode)
            if mode is Mode.PERFORMANCE:
                record = rerun_if_invalid(self, record, used)
            self.collected.records.append(record)
        if spec.compliance:
            self.collected.compliance.extend(run_compliance(self))


__all__ = ["Collected", "ScenarioSession"]

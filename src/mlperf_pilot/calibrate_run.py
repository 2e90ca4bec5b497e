"""Calibration inside a run: ``--execution-mode find`` (measure a scenario's sustainable
target and write it to the targets file) and the reruns of an INVALID performance run
with an adjusted target. The rules themselves are :mod:`mlperf_pilot.calibration`."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from mlperf_pilot.calibration import (
    SERVER_MARGIN,
    TargetsFile,
    adjust,
    not_rerunnable,
    target_from_find,
)
from mlperf_pilot.config import ExecutionMode, Mode, Scenario
from mlperf_pilot.datasets.prepared import NpyDirDataset
from mlperf_pilot.launch import run_in_child
from mlperf_pilot.loadgen.settings import Estimates
from mlperf_pilot.progress import Progress
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.records import STATUS_INVALID, STATUS_VALID, RunRecord
from mlperf_pilot.scenario_files import UserConf
from mlperf_pilot.testproc import LoadGenJob

if TYPE_CHECKING:
    from mlperf_pilot.runner import RunSummary

FIND_SERVER_PROBES = 4


def find(conf: UserConf, base: LoadGenJob, paths: ScenarioPaths, scenario: Scenario,
         prepared: NpyDirDataset, targets: TargetsFile, summary: RunSummary,
         progress: Progress) -> None:
    """Measure the sustainable target of one scenario and write it to the file."""
    plan = conf.plan
    if scenario is Scenario.SERVER:
        record, values = find_server(conf, base, paths, prepared, conf.estimates, progress)
    else:
        record = run_in_child(base, progress, prepared.count)
        values = target_from_find(scenario, record.loadgen or {})
    summary.records.append(record)
    if not_rerunnable(record.samples_failed, record.errors, record.reasons):
        values = {}  # the failures' rate is no target (the note gives the reasons)
    if values:
        targets.set(plan.system, plan.card.name, scenario, values)
        targets.save()
        summary.notes.append(f"{scenario.value}: calibrated {values} -> {targets.path}")
    else:
        summary.notes.append(f"{scenario.value}: nothing could be calibrated "
                             f"({'; '.join(record.reasons) or 'no result'})")


def find_server(conf: UserConf, base: LoadGenJob, paths: ScenarioPaths,
                prepared: NpyDirDataset, estimates: Estimates, progress: Progress,
                ) -> tuple[RunRecord, dict[str, Any]]:
    """Bisect the Server target QPS; the highest VALID probe (with a margin) wins."""
    low, high = 0.1 * estimates.offline_qps, estimates.offline_qps
    best: tuple[RunRecord, float] | None = None
    last: RunRecord | None = None
    for _ in range(FIND_SERVER_PROBES):
        qps = (low + high) / 2
        conf.rewrite(paths, Scenario.SERVER, {"target_qps": qps})
        last = run_in_child(base, progress, prepared.count)
        if last.status == STATUS_VALID:
            best = (last, qps)
            low = qps
        else:
            high = qps
    if best is None:
        assert last is not None
        return last, {}
    return best[0], {"target_qps": round(best[1] * SERVER_MARGIN, 3)}


def rerun_if_invalid(conf: UserConf, job: LoadGenJob, record: RunRecord, paths: ScenarioPaths,
                     scenario: Scenario, used: dict[str, Any], prepared: NpyDirDataset,
                     targets: TargetsFile, summary: RunSummary, progress: Progress,
                     ) -> RunRecord:
    """A run that came back INVALID: adjust the target by the rule that applies and
    rerun (up to max_reruns); both runs' logs are kept. A valid run's new target is
    written to the targets file."""
    plan, spec = conf.plan, conf.spec
    attempt = 0
    while record.status == STATUS_INVALID and attempt < spec.max_reruns:
        blocked = not_rerunnable(record.samples_failed, record.errors, record.reasons)
        if blocked:
            summary.notes.append(f"{scenario.value}: not rerun with another target: "
                                 f"{blocked}; fix that first")
            break
        change = adjust(scenario, record.loadgen or {}, used)
        if change is None:
            break
        values, reason = change
        attempt += 1
        kept = paths.root / ".attempts" / f"performance-{attempt}"
        if kept.exists():
            shutil.rmtree(kept)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(paths.log_dir(Mode.PERFORMANCE)), kept)
        shutil.copyfile(paths.record(Mode.PERFORMANCE), kept / "record.json")
        summary.notes.append(f"{scenario.value}: rerun {attempt}: {reason} "
                             f"(first run kept in {kept})")
        used = {**used, **values}
        conf.rewrite(paths, scenario, used)
        record = run_in_child(job, progress, prepared.count)
    if record.status == STATUS_VALID and attempt and spec.execution_mode is ExecutionMode.VALID:
        targets.set(plan.system, plan.card.name, scenario, used)
        targets.save()
    return record


__all__ = ["FIND_SERVER_PROBES", "find", "find_server", "rerun_if_invalid"]

"""Calibration inside a run: ``--execution-mode find`` (measure a scenario's sustainable
target and write it to the targets file) and the reruns of an INVALID performance run
with an adjusted target. The rules themselves are :mod:`mlperf_pilot.calibration`."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from mlperf_pilot.calibration import (
    OFFLINE_RERUN_RAISE,
    SERVER_MARGIN,
    adjust,
    bisect_target,
    not_rerunnable,
    target_from_find,
)
from mlperf_pilot.loadgen.settings import OFFLINE_TEST_PADDING
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.vocab import ExecutionMode, Mode, RunStatus, Scenario

if TYPE_CHECKING:
    from mlperf_pilot.engine.session import ScenarioSession

FIND_SERVER_PROBES = 4


def find(session: ScenarioSession) -> RunRecord:
    """Measure the sustainable target of one scenario and write it to the file."""
    plan, scenario, targets = session.plan, session.scenario, session.targets
    if scenario is Scenario.SERVER:
        record, values = find_server(session)
    else:
        record = session.launch(Mode.PERFORMANCE)
        values = target_from_find(scenario, record.loadgen)
    if not_rerunnable(record.samples_failed, record.errors, record.reasons):
        values = {}  # the failures' rate is no target (the note gives the reasons)
    if values:
        targets.set(plan.system, plan.card.name, scenario, values)
        targets.save()
        session.note(f"{scenario.value}: calibrated {values} -> {targets.path}")
    else:
        session.note(f"{scenario.value}: nothing could be calibrated "
                     f"({'; '.join(record.reasons) or 'no result'})")
    return record


def find_server(session: ScenarioSession) -> tuple[RunRecord, dict[str, Any]]:
    """Bisect the Server target QPS; the highest VALID probe (with a margin) wins.
    Every probe but the one returned is reported as a superseded attempt."""
    estimates = session.conf.estimates

    def probe(qps: float) -> RunRecord:
        session.conf.rewrite(session.paths, Scenario.SERVER, {"target_qps": qps})
        return session.launch(Mode.PERFORMANCE,
                              label=f"Server performance (find probe: target_qps {qps:.4g})")

    search = bisect_target(probe, 0.1 * estimates.offline_qps, estimates.offline_qps,
                           FIND_SERVER_PROBES, passed=lambda r: r.ok)
    best, last = search.best, search.last
    assert last is not None
    chosen = best or last
    for tried in search.probes:
        if tried is not chosen:
            session.attempt(tried.outcome)
    if best is None:
        return last.outcome, {}
    return best.outcome, {"target_qps": round(best.value * SERVER_MARGIN, 3)}


def rerun_if_invalid(session: ScenarioSession, record: RunRecord, used: dict[str, Any]
                     ) -> RunRecord:
    """A run that came back INVALID: adjust the target by the rule that applies and
    rerun (up to max_reruns); both runs' logs are kept. A valid run's new target is
    written to the targets file."""
    plan, spec, scenario, paths = session.plan, session.plan.spec, session.scenario, \
        session.paths
    attempt = 0
    while record.status == RunStatus.INVALID and attempt < spec.max_reruns:
        blocked = not_rerunnable(record.samples_failed, record.errors, record.reasons)
        if blocked:
            session.note(f"{scenario.value}: not rerun with another target: "
                         f"{blocked}; fix that first")
            break
        if scenario is Scenario.SERVER and session.conf.unreachable_server_bound():
            session.note("Server: not rerun at a lower QPS: its latency bound is out of reach "
                         "on this machine at any load (see the note before the first test)")
            break
        change = adjust(scenario, record.loadgen, used, offline_raise=(
            OFFLINE_TEST_PADDING if spec.execution_mode is ExecutionMode.TEST
            else OFFLINE_RERUN_RAISE))
        if change is None:
            break
        values, reason = change
        explicit = {key: getattr(spec.loadgen, key) for key in values
                    if getattr(spec.loadgen, key, None) is not None}
        if explicit:  # an explicit target wins over any rerun's: the rerun would repeat it
            given = ", ".join(f"{key} {value:g}" for key, value in explicit.items())
            session.note(f"{scenario.value}: not rerun: {reason.split(':')[0]}, but the "
                         f"target is set explicitly ({given}); change it or leave it out")
            break
        attempt += 1
        kept = paths.root / ".attempts" / f"performance-{attempt}"
        if kept.exists():
            shutil.rmtree(kept)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(paths.log_dir(Mode.PERFORMANCE)), kept)
        shutil.copyfile(paths.record(Mode.PERFORMANCE), kept / "record.json")
        session.attempt(record.model_copy(update={"log_dir": str(kept)}))
        # the note goes out now: it names where the kept run will be once in place
        final = session.final.root / kept.relative_to(paths.root)
        session.note(f"{scenario.value}: rerun {attempt}: {reason} "
                     f"(first run kept in {final})")
        used = {**used, **values}
        session.conf.rewrite(paths, scenario, used)
        record = session.launch(Mode.PERFORMANCE, label=_rerun_label(scenario, attempt,
                                                                     values))
    if record.status == RunStatus.VALID and attempt and spec.execution_mode is ExecutionMode.VALID:
        session.targets.set(plan.system, plan.card.name, scenario, used)
        session.targets.save()
    return record


def _rerun_label(scenario: Scenario, attempt: int, values: dict[str, Any]) -> str:
    """The rerun's progress label, e.g. "Offline performance (rerun 1: target_qps 812)"."""
    change = ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                       for key, value in values.items())
    return f"{scenario.value} performance (rerun {attempt}: {change})"


__all__ = ["FIND_SERVER_PROBES", "find", "find_server", "rerun_if_invalid"]

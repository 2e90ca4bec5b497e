"""A run's compliance tests (``run --compliance``): the tests planned for the round
(engine.plan.plan_compliance, checked before any run), each run in its own process and
verified against the scenario's runs, its record written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf_pilot.accuracy import GroundTruth
from mlperf_pilot.compliance.run import (
    CompliancePaths,
    ComplianceRecord,
    VerifyInputs,
    definitions,
    finish_and_verify,
    prepare_run,
)
from mlperf_pilot.errors import ComplianceError
from mlperf_pilot.vocab import ComplianceStatus, ExecutionMode, Mode, RunStatus

if TYPE_CHECKING:
    from mlperf_pilot.engine.session import ScenarioSession


def run_compliance(session: ScenarioSession) -> list[ComplianceRecord]:
    """The planned compliance tests for the session's scenario, each in its own process."""
    plan, scenario = session.plan, session.scenario
    spec, card, planned = plan.spec, plan.card, plan.compliance
    assert planned is not None  # planned whenever spec.compliance is set
    if planned.skipped:
        session.note(f"compliance tests not supported for {planned.benchmark}: "
                     f"{', '.join(planned.skipped)}")
    dataset = session.prepared.dataset
    records = []
    for test in planned.tests:
        cpaths = CompliancePaths(session.paths, test)
        try:
            prepare_run(cpaths, planned.benchmark, scenario)
        except ComplianceError as exc:
            record = ComplianceRecord(test=test, scenario=scenario, reasons=[exc.message],
                                      run_id=session.prepared.run_id)
        else:
            run = session.launch(
                Mode.PERFORMANCE, audit_config=cpaths.audit_config, log_dir=cpaths.run_dir,
                record_path=cpaths.run_dir / "run.json", test05=test == "TEST05",
                label=f"{scenario.value} {test}")
            truth = GroundTruth.of(dataset, use_inv_map=plan.fmt.postprocess.accuracy_inv_map)
            inputs = VerifyInputs(
                cpaths, planned.benchmark, card.accuracy.metric, truth,
                definitions()[test]["threshold"], planned.accuracy_delta_percent,
                test_mode=spec.execution_mode is ExecutionMode.TEST,
                duration_ms=spec.loadgen.min_duration_ms or spec.test_duration_ms,
                run_id=session.prepared.run_id)
            record = finish_and_verify(inputs, planned.seeds)
            if run.status is RunStatus.FAILED:
                record.status = ComplianceStatus.FAIL
                record.reasons = [*run.reasons, *record.reasons]
        cpaths.record.parent.mkdir(parents=True, exist_ok=True)
        cpaths.record.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
        records.append(record)
    return records


__all__ = ["run_compliance"]

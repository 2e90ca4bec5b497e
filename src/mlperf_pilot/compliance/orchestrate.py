"""A run's compliance tests (``run --compliance``): which tests the round requires for
the scenario, each run in its own process and verified, its record written."""

from __future__ import annotations

from mlperf_pilot.accuracy import GroundTruth
from mlperf_pilot.compliance.run import (
    FAIL,
    SUPPORTED,
    CompliancePaths,
    ComplianceRecord,
    VerifyInputs,
    definitions,
    finish_and_verify,
    prepare_run,
)
from mlperf_pilot.config import ExecutionMode, Scenario
from mlperf_pilot.datasets.prepared import NpyDirDataset
from mlperf_pilot.errors import ComplianceError, ConfigError
from mlperf_pilot.launch import run_in_child
from mlperf_pilot.plan import RunPlan
from mlperf_pilot.progress import Progress
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.records import STATUS_FAILED
from mlperf_pilot.submission.rounds import load_round
from mlperf_pilot.testproc import LoadGenJob


def run_compliance(plan: RunPlan, base: LoadGenJob, paths: ScenarioPaths, scenario: Scenario,
                   prepared: NpyDirDataset, notes: list[str], progress: Progress,
                   ) -> list[ComplianceRecord]:
    """The round's compliance tests for this scenario, each in its own process."""
    spec, card = plan.spec, plan.card
    rules = load_round(spec.round)
    benchmark = rules.mlperf_model(card.benchmark)
    if benchmark not in rules.models:
        raise ConfigError(f"{card.name} ({benchmark}) is not a benchmark of "
                          f"round {rules.round}", hint="choose another --round")
    required = rules.models[benchmark].compliance_tests
    tests = spec.compliance_tests or tuple(t for t in required if t in SUPPORTED)
    skipped = [t for t in required if t not in SUPPORTED]
    if skipped and not spec.compliance_tests:
        notes.append(f"compliance tests not supported for {benchmark}: {', '.join(skipped)}")
    delta = rules.models[benchmark].accuracy_delta_percent.get(
        card.accuracy.metric, 0.1 if benchmark.endswith("99.9") else 1.0)
    records = []
    for test in tests:
        cpaths = CompliancePaths(paths, test)
        try:
            prepare_run(cpaths, benchmark, scenario)
        except ComplianceError as exc:
            record = ComplianceRecord(test=test, scenario=scenario.value,
                                      reasons=[exc.message])
        else:
            job = base.model_copy(update={
                "audit_config": cpaths.audit_config, "log_dir": cpaths.run_dir,
                "record_path": cpaths.run_dir / "run.json", "test05": test == "TEST05",
                "label": f"{scenario.value} {test}",
            })
            run = run_in_child(job, progress, prepared.count)
            truth = GroundTruth.of(prepared, use_inv_map=plan.fmt.postprocess.accuracy_inv_map)
            test_mode = spec.execution_mode is ExecutionMode.TEST
            inputs = VerifyInputs(
                cpaths, benchmark, card.accuracy.metric, truth,
                definitions()[test]["threshold"], delta, test_mode=test_mode,
                duration_ms=spec.loadgen.min_duration_ms or spec.test_duration_ms)
            record = finish_and_verify(inputs, rules.seeds)
            if run.status == STATUS_FAILED:
                record.status = FAIL
                record.reasons = [*run.reasons, *record.reasons]
        cpaths.record.parent.mkdir(parents=True, exist_ok=True)
        cpaths.record.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
        records.append(record)
    return records


__all__ = ["run_compliance"]

"""The benchmark chain for one ``mlperf-pilot run``: plan, then execute.

    plan_run:  RunSpec + catalog -> RunPlan   (every name and combination checked first;
               mlperf_pilot.plan)
    execute:   model file -> dataset -> preprocessed samples -> backend -> warm-up
               (mlperf_pilot.warmup) -> per scenario: user.conf (mlperf_pilot.scenario_files)
               -> per mode: LoadGen -> logs -> accuracy -> RunRecord per (scenario, mode),
               written next to LoadGen's logs; reruns and find runs
               (mlperf_pilot.calibrate_run), compliance tests (compliance.orchestrate)

Nothing here prints; progress goes through a Progress, results come back as records.
The run holds the lock of ``<results>/<system>/<model>/`` and writes each scenario in
a staging folder renamed into place when it is finished (results.staging); each test
runs in its own process (launch.run_in_child).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.backends import backend_class
from mlperf_pilot.calibrate_run import FIND_SERVER_PROBES, find, rerun_if_invalid
from mlperf_pilot.calibration import DEFAULT_TARGETS_FILE, TargetsFile
from mlperf_pilot.catalog import Catalog
from mlperf_pilot.compliance.orchestrate import run_compliance
from mlperf_pilot.compliance.run import OK_STATUSES, ComplianceRecord
from mlperf_pilot.config import Device, ExecutionMode, Mode, RunSpec, Scenario, default_cache_dir
from mlperf_pilot.datasets.prepared import prepare_images, usable_cores
from mlperf_pilot.datasets.resolve import resolve_dataset
from mlperf_pilot.interrupts import Interrupted
from mlperf_pilot.launch import run_in_child
from mlperf_pilot.plan import RunPlan, choose_format, plan_run, resolve_spec
from mlperf_pilot.progress import NULL_PROGRESS, Progress
from mlperf_pilot.results.provenance import collect_versions
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.results.staging import ResultsLock, RunStages
from mlperf_pilot.scenario_files import UserConf, write_scenario_files
from mlperf_pilot.storage import is_disk_full, run_disk_full_error
from mlperf_pilot.testproc import DatasetRef, LoadGenJob
from mlperf_pilot.warmup import WARMUP_BUDGET_S, measure_speed, warm_up


@dataclass
class RunSummary:
    records: list[RunRecord]
    results_dir: Path
    system: str
    model_source: str = ""
    dataset_source: str = ""
    notes: list[str] = field(default_factory=list)
    compliance: list[ComplianceRecord] = field(default_factory=list)
    targets_file: Path | None = None

    @property
    def ok(self) -> bool:
        ran = bool(self.records) or bool(self.compliance)
        # INDICATIVE (a test-mode band that short runs cannot judge) is not a failure
        return ran and all(r.ok for r in self.records) and all(
            c.status in OK_STATUSES for c in self.compliance)


class BenchmarkRunner:
    """Executes a RunPlan; one instance per ``mlperf-pilot run``."""

    def __init__(
        self, plan: RunPlan, *, cache: AssetCache | None = None,
        progress: Progress = NULL_PROGRESS, transport: httpx.BaseTransport | None = None,
        command: str | None = None,
    ) -> None:
        self.command = command
        self.plan = plan
        self.spec = plan.spec
        self.cache = cache or AssetCache(plan.spec.cache_dir or default_cache_dir())
        self.progress = progress
        self.transport = transport
        self.summary: RunSummary | None = None  # the last run's, also when it stopped early

    def run(self) -> RunSummary:
        """Execute the plan. A full disk ends it with an error naming the file that could
        not be written and the finished tests that are kept."""
        plan, spec = self.plan, self.spec
        summary = self.summary = RunSummary(
            records=[], results_dir=Path(spec.results_dir).resolve(), system=plan.system)
        find_mode = spec.execution_mode is ExecutionMode.FIND
        stages = RunStages(summary, summary.results_dir, plan.system, plan.card.name,
                           find=find_mode, modes=spec.modes)
        try:
            with ResultsLock(summary.results_dir / plan.system / plan.card.name,
                             self.command):
                return self._run_staged(summary, stages)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise run_disk_full_error(
                exc, cache_root=self.cache.root, results_dir=Path(spec.results_dir),
                finished=[f"{r.scenario} {r.mode}" for r in summary.records],
                partial=stages.partial_at,
            ) from exc

    def _run_staged(self, summary: RunSummary, stages: RunStages) -> RunSummary:
        """_run; when it stops early the unfinished scenario's files are kept
        (results.staging) and an Interrupted carries what the run had finished."""
        try:
            return self._run(summary, stages)
        except BaseException as exc:
            if isinstance(exc, Interrupted) and exc.record is not None:
                summary.records.append(exc.record)  # the test in flight, marked
            where, previous_kept = stages.keep_partial()
            if isinstance(exc, Interrupted):
                exc.summary, exc.partial, exc.previous_kept = summary, where, previous_kept
            raise

    def _run(self, summary: RunSummary, stages: RunStages) -> RunSummary:
        plan, spec = self.plan, self.spec
        model_path = self._model(summary)
        resolved = resolve_dataset(plan.dataset_card, spec.dataset_path, self.cache,
                                   count=spec.count, progress=self.progress)
        summary.dataset_source = resolved.source
        summary.notes.extend(resolved.notes)
        prepared = prepare_images(resolved.images, plan.recipe, self.cache,
                                  workers=spec.preprocess_workers, progress=self.progress)
        if prepared.library != plan.recipe.resize.library:
            summary.notes.append(
                f"preprocessing used {prepared.library}, not {plan.recipe.resize.library} as "
                "the reference does (install the [opencv] extra for reference pixels)"
            )
        cls = backend_class(plan.backend_name)
        parallel = cls.thread_safe and spec.sut.device is Device.CPU
        cores = usable_cores()
        layouts = {scenario: spec.sut.layout(scenario.value, cores, parallel=parallel)
                   for scenario in spec.scenarios}
        # the warm-up estimates one worker's speed, as Offline runs it
        _, threads = spec.sut.layout(Scenario.OFFLINE.value, cores, parallel=parallel)
        estimates, max_batch, device_in_use = warm_up(plan, model_path, prepared, threads,
                                                      self.progress)
        backend_version = cls.version()
        by_layout: dict[tuple[int, int], list[str]] = {}
        for scenario, layout in layouts.items():
            by_layout.setdefault(layout, []).append(scenario.value)
        shapes = "; ".join(
            f"{w} worker(s) x {t} intra-op thread(s)"
            + (f" ({', '.join(names)})" if len(by_layout) > 1 else "")
            for (w, t), names in by_layout.items())
        summary.notes.append(
            f"backend {plan.backend_name} {backend_version or ''} on "
            f"{device_in_use}: {shapes}, batches of up to {max_batch}; "
            f"warm-up: {estimates.latency_ms:.3g} ms per sample, "
            f"{estimates.offline_qps:.4g} samples/s at batch {max_batch}"
        )
        context = {
            "command": self.command,
            "model_path": str(model_path) if model_path else None,
            "model_source": summary.model_source,
            "dataset_root": str(resolved.images.root),
            "dataset_source": resolved.source,
            "dataset_count": len(resolved.images),
            "preprocessed": str(prepared.folder),
            "preprocessing_library": prepared.library,
            "backend": plan.backend_name,
            "backend_version": backend_version,
            "device_in_use": device_in_use,
            "max_batch_size": max_batch,
            "warmup_estimates": {"latency_ms": estimates.latency_ms,
                                 "batch_latency_ms": estimates.batch_latency_ms},
        }
        versions = collect_versions()
        dataset_ref = DatasetRef.of(prepared)
        targets = TargetsFile(spec.targets_file or DEFAULT_TARGETS_FILE)
        summary.targets_file = targets.path.resolve()
        conf = UserConf(plan, prepared.count, estimates)
        for scenario in spec.scenarios:
            workers, threads = layouts[scenario]
            context = {**context, "workers": workers, "threads": threads}
            scenario_spec = spec.model_copy(update={"sut": spec.sut.model_copy(
                update={"workers": workers, "threads": threads})})
            stage = stages.begin(scenario)
            paths = stage.staging  # its staging folder
            calibrated = (targets.get(plan.system, plan.card.name, scenario)
                          if spec.execution_mode is ExecutionMode.VALID else {})
            if spec.execution_mode is ExecutionMode.VALID and not calibrated and not (
                    spec.loadgen.target_qps or spec.loadgen.target_latency_ms):
                summary.notes.append(
                    f"{scenario.value}: no calibrated target in {targets.path}; using the "
                    "warm-up estimate (run --execution-mode find first)")
            used = write_scenario_files(conf, stage, paths, scenario, context, versions,
                                        calibrated)
            base = LoadGenJob(
                spec=scenario_spec, model=plan.card.name, format_id=plan.fmt.id,
                backend=plan.backend_name, system=plan.system, model_path=model_path,
                dataset=dataset_ref, scenario=scenario, mode=Mode.PERFORMANCE,
                scenario_root=paths.root,
            )
            if spec.execution_mode is ExecutionMode.FIND:
                find(conf, base, paths, scenario, prepared, targets, summary, self.progress)
                stages.commit()
                continue
            for mode in spec.modes:
                job = base.model_copy(update={"mode": mode})
                record = run_in_child(job, self.progress, prepared.count)
                if mode is Mode.PERFORMANCE:
                    record = rerun_if_invalid(conf, job, record, paths, scenario, used,
                                              prepared, targets, summary, self.progress)
                summary.records.append(record)
            if spec.compliance:
                summary.compliance.extend(run_compliance(
                    plan, base, paths, scenario, prepared, summary.notes, self.progress))
            stages.commit()
        return summary

    def _model(self, summary: RunSummary) -> Path | None:
        if self.plan.backend_name == "null":
            summary.model_source = "none (null backend)"
            return self.spec.sut.model_path
        resolved = resolve_model(self.plan.card, self.plan.fmt, self.spec.sut.model_path, self.cache,
                                 transport=self.transport, progress=self.progress,
                                 sha256=self.spec.sut.model_sha256,
                                 allow_unverified=self.spec.allow_unverified_download)
        summary.model_source = ("cached " if resolved.from_cache else "") + resolved.source
        return resolved.path


def run_benchmark(
    spec: RunSpec, *, cache: AssetCache | None = None, progress: Progress = NULL_PROGRESS,
    catalog: Catalog | None = None, transport: httpx.BaseTransport | None = None,
) -> RunSummary:
    """Plan and execute in one call (the Python API's entry point)."""
    plan = plan_run(spec, catalog)
    return BenchmarkRunner(plan, cache=cache, progress=progress, transport=transport).run()


__all__ = [
    "FIND_SERVER_PROBES", "WARMUP_BUDGET_S", "BenchmarkRunner", "Device", "RunPlan",
    "RunSpec", "RunSummary", "Scenario", "choose_format", "measure_speed", "plan_run",
    "resolve_spec", "run_benchmark", "run_in_child",
]

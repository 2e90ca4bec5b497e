"""The benchmark chain for one ``mlperf-pilot run``: plan, then execute.

    plan_run:  RunSpec + catalog -> RunPlan   (every name and combination checked first)
    execute:   model file -> dataset -> preprocessed samples -> backend -> warm-up
               -> per scenario: user.conf -> per mode: LoadGen -> logs -> accuracy
               -> RunRecord per (scenario, mode), written next to LoadGen's logs

Nothing here prints; progress goes through a Progress, results come back as records.
The run holds the lock of ``<results>/<system>/<model>/`` and writes each scenario in
a staging folder renamed into place when it is finished (results.staging); each test
runs in its own process (launch.run_in_child).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mlperf_pilot.accuracy import GroundTruth
from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.backends import LoadOptions, backend_class, create_backend
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.calibration import (
    DEFAULT_TARGETS_FILE,
    SERVER_MARGIN,
    TargetsFile,
    adjust,
    not_rerunnable,
    target_from_find,
)
from mlperf_pilot.catalog import Catalog, DatasetCard, ModelCard, ModelFormat, PreprocessSpec
from mlperf_pilot.catalog import load_catalog as _load_catalog
from mlperf_pilot.compliance.run import (
    FAIL,
    OK_STATUSES,
    SUPPORTED,
    CompliancePaths,
    ComplianceRecord,
    VerifyInputs,
    definitions,
    finish_and_verify,
    prepare_run,
)
from mlperf_pilot.config import (
    Device,
    ExecutionMode,
    Mode,
    RunSpec,
    Scenario,
    build_run_spec,
    deep_merge,
    default_cache_dir,
)
from mlperf_pilot.datasets.prepared import (
    NpyDirDataset,
    PreparedDataset,
    prepare_images,
    usable_cores,
)
from mlperf_pilot.datasets.resolve import resolve_dataset
from mlperf_pilot.decoders import (
    Decoder,
    Geometry,
    OutputMismatchError,
    create_decoder,
    output_fix,
)
from mlperf_pilot.errors import BackendError, ComplianceError, ConfigError, MlperfPilotError
from mlperf_pilot.interrupts import Interrupted
from mlperf_pilot.launch import run_in_child
from mlperf_pilot.loadgen.settings import Estimates, render_user_conf, user_conf_settings
from mlperf_pilot.preflight import check_run
from mlperf_pilot.progress import NULL_PROGRESS, Progress
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.provenance import collect_versions
from mlperf_pilot.results.records import (
    STATUS_FAILED,
    STATUS_INVALID,
    STATUS_VALID,
    RunRecord,
)
from mlperf_pilot.results.staging import ResultsLock, ScenarioStage, relocate_text
from mlperf_pilot.storage import is_disk_full, run_disk_full_error, write_text_atomic
from mlperf_pilot.submission.rounds import load_round
from mlperf_pilot.testproc import DatasetRef, LoadGenJob

WARMUP_BUDGET_S = 3.0
FIND_SERVER_PROBES = 4


# ----------------------------------------------------------------------------- planning


def resolve_spec(layers: Iterable[Mapping[str, Any]], catalog: Catalog | None = None) -> RunSpec:
    """Merge config layers (lowest first) over the chosen model card's run_defaults."""
    catalog = catalog or _load_catalog()
    layers = list(layers)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    model = merged.get("model") or RunSpec.model_fields["model"].default
    card = catalog.model(str(model))
    return build_run_spec([card.run_defaults, *layers])


@dataclass(frozen=True)
class RunPlan:
    spec: RunSpec
    card: ModelCard
    fmt: ModelFormat
    dataset_card: DatasetCard
    recipe: PreprocessSpec
    backend_name: str

    @property
    def system(self) -> str:
        return self.spec.resolved_system_name(self.backend_name)


def plan_run(spec: RunSpec, catalog: Catalog | None = None) -> RunPlan:
    """Check every name and combination before anything is downloaded or run."""
    catalog = catalog or _load_catalog()
    card = catalog.model(spec.model)
    backend_name = spec.backend or card.default_backend
    cls = backend_class(backend_name)
    fmt = choose_format(card, cls, spec.model_format)
    if fmt.format not in cls.formats:
        usable = [f.id for f in card.formats if f.format in cls.formats]
        raise ConfigError(
            f"the {backend_name} backend cannot run {card.name} format {fmt.id} ({fmt.format})",
            hint=f"use --model-format {usable[0]}" if usable else
            f"choose a backend for {fmt.format} models",
        )
    if spec.device not in cls.devices:
        raise ConfigError(
            f"the {backend_name} backend does not support --device {spec.device.value}",
            hint=f"supported: {', '.join(d.value for d in cls.devices)}",
        )
    dataset_card = catalog.dataset(spec.dataset or card.dataset)
    if dataset_card.task != card.task:
        raise ConfigError(
            f"dataset {dataset_card.name} is for {dataset_card.task}, model {card.name} "
            f"for {card.task}",
            hint=f"leave out --dataset (the card uses {card.dataset})",
        )
    _check_paths(spec)
    recipe = catalog.recipe(fmt.preprocess)
    # folders, threads, batch memory, targets file: before any model load or preprocessing
    check_run(spec, system=spec.resolved_system_name(backend_name), model=card.name,
              recipe=recipe, parallel=cls.thread_safe and spec.device is Device.CPU)
    return RunPlan(spec, card, fmt, dataset_card, recipe, backend_name)


def choose_format(card: ModelCard, backend: type[Backend], requested: str | None
                  ) -> ModelFormat:
    """The format asked for; else, in the backend's order of preference, the card's
    default format when it is of that kind, or the card's first format of that kind
    (``--backend openvino`` picks the IR the card converts to, before the ONNX file
    OpenVINO also reads)."""
    if requested is not None:
        return card.format(requested)
    default = card.format(None)
    for kind in backend.formats:
        if default.format == kind:
            return default
        for fmt in card.formats:
            if fmt.format == kind:
                return fmt
    return default  # plan_run refuses it with the usable choices


def _check_paths(spec: RunSpec) -> None:
    if spec.model_path is not None and not Path(spec.model_path).expanduser().exists():
        raise ConfigError(
            f"model file {spec.model_path} does not exist",
            hint="check --model-path, or leave it out to use the catalog's copy",
        )
    if spec.dataset_path is not None and not Path(spec.dataset_path).expanduser().is_dir():
        raise ConfigError(
            f"dataset folder {spec.dataset_path} does not exist",
            hint="check --dataset-path (the folder with the images and the list file)",
        )


# ---------------------------------------------------------------------------- execution


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


def measure_speed(
    backend: Backend, decoder: Decoder, dataset: PreparedDataset, max_batch_size: int,
    budget_s: float = WARMUP_BUDGET_S,
) -> Estimates:
    """Warm the backend up and time batch 1 and a full batch the way the SUT runs them
    (a batch of loaded rows is a view, Offline batches need no copy), predict, decode;
    also proves the model and the decoder work on real data before LoadGen starts, and
    that the outputs are what the card's postprocess reads (OutputMismatchError)."""
    sample = np.ascontiguousarray(dataset.read(0))[None]
    source = np.ascontiguousarray(np.repeat(sample, max_batch_size, axis=0))
    buffer = np.empty_like(source)
    # fewer loaded samples than a batch: no run of consecutive rows fills one, so the
    # SUT gathers (copies) every batch; otherwise batches are views
    copies = dataset.count < max_batch_size

    def timed(size: int, budget: float) -> float:
        rows = np.arange(size)
        sample_ids = np.zeros(size, dtype=np.int64)  # every row is sample 0
        times: list[float] = []
        spent = 0.0
        while len(times) < 5 and (len(times) < 2 or spent < budget):
            start = time.perf_counter()
            batch = (np.take(source, rows, axis=0, out=buffer[:size]) if copies and size > 1
                     else source[:size])
            outputs = backend.predict(batch)
            decoder.decode(outputs, sample_ids)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            spent += elapsed
        return statistics.median(times[1:]) * 1000.0  # the first call pays for warm-up

    try:
        if backend.name != "null":  # the null backend answers zeros of any card's shape
            decoder.check_outputs(backend.predict(source[:1]), 1)
        latency = timed(1, budget_s / 2)
        batch_latency = timed(max_batch_size, budget_s / 2) if max_batch_size > 1 else latency
    except MlperfPilotError:
        raise
    except Exception as exc:
        raise BackendError(
            f"inference failed during warm-up: {type(exc).__name__}: {exc}",
            hint="the model does not accept this input; check --model-path and --model-format",
        ) from exc
    return Estimates(latency_ms=latency, batch_latency_ms=batch_latency,
                     max_batch_size=max_batch_size)


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
        self.summary: RunSummary | None = None
        self._stage: ScenarioStage | None = None  # the scenario being written
        self._stage_marks = (0, 0, 0)  # its first record, compliance record, note
        self._partial_at: Path | None = None  # where an unfinished scenario was kept

    def run(self) -> RunSummary:
        """Execute the plan. A full disk ends it with an error naming the file that could
        not be written and the finished tests that are kept."""
        try:
            with ResultsLock(Path(self.spec.results_dir).resolve() / self.plan.system
                             / self.plan.card.name, self.command):
                return self._run_staged()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise run_disk_full_error(
                exc, cache_root=self.cache.root, results_dir=Path(self.spec.results_dir),
                finished=[f"{r.scenario} {r.mode}" for r in
                          (self.summary.records if self.summary is not None else [])],
                partial=self._partial_at,
            ) from exc

    def _run(self) -> RunSummary:
        plan, spec = self.plan, self.spec
        summary = self.summary = RunSummary(
            records=[], results_dir=Path(spec.results_dir).resolve(), system=plan.system)
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
        parallel = cls.thread_safe and spec.device is Device.CPU
        cores = usable_cores()
        layouts = {scenario: spec.sut.layout(scenario.value, cores, parallel=parallel)
                   for scenario in spec.scenarios}
        # the warm-up estimates one worker's speed, as Offline runs it
        _, threads = spec.sut.layout(Scenario.OFFLINE.value, cores, parallel=parallel)
        estimates, max_batch, device_in_use = self._warm_up(model_path, prepared, threads)
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
        for scenario in spec.scenarios:
            workers, threads = layouts[scenario]
            context = {**context, "workers": workers, "threads": threads}
            scenario_spec = spec.model_copy(update={"sut": spec.sut.model_copy(
                update={"workers": workers, "threads": threads})})
            paths = self._begin_scenario(scenario, summary)  # its staging folder
            calibrated = (targets.get(plan.system, plan.card.name, scenario)
                          if spec.execution_mode is ExecutionMode.VALID else {})
            if spec.execution_mode is ExecutionMode.VALID and not calibrated and not (
                    spec.loadgen.target_qps or spec.loadgen.target_latency_ms):
                summary.notes.append(
                    f"{scenario.value}: no calibrated target in {targets.path}; using the "
                    "warm-up estimate (run --execution-mode find first)")
            used = self._write_scenario_files(paths, scenario, prepared.count, estimates,
                                              context, versions, calibrated)
            base = LoadGenJob(
                spec=scenario_spec, model=plan.card.name, format_id=plan.fmt.id,
                backend=plan.backend_name, system=plan.system, model_path=model_path,
                dataset=dataset_ref, scenario=scenario, mode=Mode.PERFORMANCE,
                scenario_root=paths.root,
            )
            if spec.execution_mode is ExecutionMode.FIND:
                self._find(base, paths, scenario, prepared, estimates, targets, summary)
                self._commit_scenario(summary)
                continue
            for mode in spec.modes:
                job = base.model_copy(update={"mode": mode})
                record = run_in_child(job, self.progress, prepared.count)
                if mode is Mode.PERFORMANCE:
                    record = self._rerun_if_invalid(job, record, paths, scenario, used,
                                                    prepared, targets, summary)
                summary.records.append(record)
            if spec.compliance:
                summary.compliance.extend(
                    self._compliance(base, paths, scenario, prepared, summary.notes))
            self._commit_scenario(summary)
        return summary

    # ------------------------------------------------------ results folders (staging)

    def _run_staged(self) -> RunSummary:
        """_run; when it stops early the unfinished scenario's files are kept
        (results.staging) and an Interrupted carries what the run had finished."""
        try:
            return self._run()
        except BaseException as exc:
            where, previous_kept = self._keep_partial(exc)
            self._partial_at = where  # named by run()'s disk-full error
            if isinstance(exc, Interrupted):
                exc.summary, exc.partial, exc.previous_kept = self.summary, where, previous_kept
            raise

    def _begin_scenario(self, scenario: Scenario, summary: RunSummary) -> ScenarioPaths:
        find = self.spec.execution_mode is ExecutionMode.FIND
        final = ScenarioPaths.of(summary.results_dir, self.plan.system, self.plan.card.name,
                                 scenario)
        stage = ScenarioStage(final, accuracy=not find and Mode.ACCURACY in self.spec.modes,
                              performance=find or Mode.PERFORMANCE in self.spec.modes)
        paths = stage.begin()
        self._stage = stage
        self._stage_marks = (len(summary.records), len(summary.compliance), len(summary.notes))
        return paths

    def _commit_scenario(self, summary: RunSummary) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            self._relocate_summary(summary, stage.staging.root, stage.commit())

    def _keep_partial(self, exc: BaseException) -> tuple[Path | None, bool]:
        summary = self.summary
        if isinstance(exc, Interrupted) and exc.record is not None and summary is not None:
            summary.records.append(exc.record)  # the test in flight, marked
        stage, self._stage = self._stage, None
        if stage is None:
            return None, False
        try:
            where, previous_kept = stage.keep_partial()
        except OSError:  # e.g. the disk is full: the staging folder stays as it is
            return stage.staging.root, stage.final.root.exists()
        if summary is not None:
            self._relocate_summary(summary, stage.staging.root, where)
        return where, previous_kept

    def _relocate_summary(self, summary: RunSummary, old: Path, new: Path) -> None:
        records, checks, notes = self._stage_marks
        for record in summary.records[records:]:
            record.log_dir = relocate_text(record.log_dir, old, new)
            record.reasons = [relocate_text(r, old, new) for r in record.reasons]
        for check in summary.compliance[checks:]:
            check.run_dir = relocate_text(check.run_dir, old, new)
            check.test_dir = relocate_text(check.test_dir, old, new)
            check.reasons = [relocate_text(r, old, new) for r in check.reasons]
        summary.notes[notes:] = [relocate_text(n, old, new) for n in summary.notes[notes:]]

    # ----------------------------------------------------------------- calibration

    def _find(self, base: LoadGenJob, paths: ScenarioPaths, scenario: Scenario,
              prepared: NpyDirDataset, estimates: Estimates, targets: TargetsFile,
              summary: RunSummary) -> None:
        """Measure the sustainable target of one scenario and write it to the file."""
        if scenario is Scenario.SERVER:
            record, values = self._find_server(base, paths, prepared, estimates)
        else:
            record = run_in_child(base, self.progress, prepared.count)
            values = target_from_find(scenario, record.loadgen or {})
        summary.records.append(record)
        if not_rerunnable(record.samples_failed, record.errors, record.reasons):
            values = {}  # the failures' rate is no target (the note gives the reasons)
        if values:
            targets.set(self.plan.system, self.plan.card.name, scenario, values)
            targets.save()
            summary.notes.append(f"{scenario.value}: calibrated {values} -> {targets.path}")
        else:
            summary.notes.append(f"{scenario.value}: nothing could be calibrated "
                                 f"({'; '.join(record.reasons) or 'no result'})")

    def _find_server(self, base: LoadGenJob, paths: ScenarioPaths, prepared: NpyDirDataset,
                     estimates: Estimates) -> tuple[RunRecord, dict[str, Any]]:
        """Bisect the Server target QPS; the highest VALID probe (with a margin) wins."""
        low, high = 0.1 * estimates.offline_qps, estimates.offline_qps
        best: tuple[RunRecord, float] | None = None
        last: RunRecord | None = None
        for _ in range(FIND_SERVER_PROBES):
            qps = (low + high) / 2
            self._rewrite_user_conf(paths, Scenario.SERVER, {"target_qps": qps})
            last = run_in_child(base, self.progress, prepared.count)
            if last.status == STATUS_VALID:
                best = (last, qps)
                low = qps
            else:
                high = qps
        if best is None:
            assert last is not None
            return last, {}
        return best[0], {"target_qps": round(best[1] * SERVER_MARGIN, 3)}

    def _rerun_if_invalid(self, job: LoadGenJob, record: RunRecord, paths: ScenarioPaths,
                          scenario: Scenario, used: dict[str, Any], prepared: NpyDirDataset,
                          targets: TargetsFile, summary: RunSummary) -> RunRecord:
        """A run that came back INVALID: adjust the target by the rule that applies and
        rerun (up to max_reruns); both runs' logs are kept. A valid run's new target is
        written to the targets file."""
        attempt = 0
        while record.status == STATUS_INVALID and attempt < self.spec.max_reruns:
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
            self._rewrite_user_conf(paths, scenario, used)
            record = run_in_child(job, self.progress, prepared.count)
        if record.status == STATUS_VALID and attempt and \
                self.spec.execution_mode is ExecutionMode.VALID:
            targets.set(self.plan.system, self.plan.card.name, scenario, used)
            targets.save()
        return record

    def _rewrite_user_conf(self, paths: ScenarioPaths, scenario: Scenario,
                           calibrated: dict[str, Any]) -> dict[str, Any]:
        keys = user_conf_settings(
            self.spec, scenario,
            performance_sample_count=self.plan.card.performance_sample_count,
            dataset_count=self._dataset_count, estimates=self._estimates, calibrated=calibrated,
        )
        self._user_conf(paths, scenario, keys)
        return _targets_of(keys, scenario)

    def _compliance(self, base: LoadGenJob, paths: ScenarioPaths, scenario: Scenario,
                    prepared: NpyDirDataset, notes: list[str]) -> list[ComplianceRecord]:
        """The round's compliance tests for this scenario, each in its own process."""
        rules = load_round(self.spec.round)
        benchmark = rules.mlperf_model(self.plan.card.benchmark)
        if benchmark not in rules.models:
            raise ConfigError(f"{self.plan.card.name} ({benchmark}) is not a benchmark of "
                              f"round {rules.round}", hint="choose another --round")
        required = rules.models[benchmark].compliance_tests
        tests = self.spec.compliance_tests or tuple(t for t in required if t in SUPPORTED)
        skipped = [t for t in required if t not in SUPPORTED]
        if skipped and not self.spec.compliance_tests:
            notes.append(f"compliance tests not supported for {benchmark}: {', '.join(skipped)}")
        delta = rules.models[benchmark].accuracy_delta_percent.get(
            self.plan.card.accuracy.metric, 0.1 if benchmark.endswith("99.9") else 1.0)
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
                run = run_in_child(job, self.progress, prepared.count)
                truth = GroundTruth.of(
                    prepared, use_inv_map=self.plan.fmt.postprocess.accuracy_inv_map)
                test_mode = self.spec.execution_mode is ExecutionMode.TEST
                inputs = VerifyInputs(
                    cpaths, benchmark, self.plan.card.accuracy.metric, truth,
                    definitions()[test]["threshold"], delta, test_mode=test_mode,
                    duration_ms=self.spec.loadgen.min_duration_ms or self.spec.test_duration_ms)
                record = finish_and_verify(inputs, rules.seeds)
                if run.status == STATUS_FAILED:
                    record.status = FAIL
                    record.reasons = [*run.reasons, *record.reasons]
            cpaths.record.parent.mkdir(parents=True, exist_ok=True)
            cpaths.record.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
            records.append(record)
        return records

    # ------------------------------------------------------------------------ steps

    def _warm_up(self, model_path: Path | None, prepared: NpyDirDataset, threads: int
                 ) -> tuple[Estimates, int, str]:
        """Load the model here once to prove it works and time it; the tests themselves
        run in child processes."""
        plan = self.plan
        backend = create_backend(plan.backend_name)
        with self.progress.task(f"loading model on {plan.backend_name}/{self.spec.device.value}"):
            backend.load(LoadOptions(
                model_path=model_path or Path("none"), inputs=plan.fmt.inputs,
                outputs=plan.fmt.postprocess.outputs, device=self.spec.device, threads=threads,
                extra=dict(plan.fmt.options),
            ))
        fixed = backend.fixed_batch_size
        max_batch = min(self.spec.sut.max_batch_size, fixed) if fixed else \
            self.spec.sut.max_batch_size
        device_in_use = backend.device_in_use
        try:
            with self.progress.task("warm-up"):
                geometry = Geometry.of(plan.recipe, prepared.image_hw)
                decoder = create_decoder(plan.fmt.postprocess, geometry)
                estimates = measure_speed(backend, decoder, prepared, max_batch)
        except OutputMismatchError as exc:
            raise OutputMismatchError(exc.message, output_fix(exc, plan.card, plan.fmt),
                                      fits=exc.fits) from exc
        finally:
            backend.close()
        return estimates, max_batch, device_in_use

    def _model(self, summary: RunSummary) -> Path | None:
        if self.plan.backend_name == "null":
            summary.model_source = "none (null backend)"
            return self.spec.model_path
        resolved = resolve_model(self.plan.card, self.plan.fmt, self.spec.model_path, self.cache,
                                 transport=self.transport, progress=self.progress,
                                 sha256=self.spec.model_sha256,
                                 allow_unverified=self.spec.allow_unverified_download)
        summary.model_source = ("cached " if resolved.from_cache else "") + resolved.source
        return resolved.path

    def _write_scenario_files(
        self, paths: ScenarioPaths, scenario: Scenario, dataset_count: int,
        estimates: Estimates, context: dict[str, Any], versions: dict[str, Any],
        calibrated: dict[str, Any],
    ) -> dict[str, Any]:
        """user.conf, run_spec.json, versions.json; returns the targets user.conf uses.
        Beside a kept performance run they stay (they describe it): an accuracy run then
        gets records/accuracy.user.conf and records/accuracy.run_spec.json."""
        self._dataset_count, self._estimates = dataset_count, estimates
        paths.root.mkdir(parents=True, exist_ok=True)
        if self._stage is not None and self._stage.carried_performance:
            if self._stage.redo_accuracy:
                keys = user_conf_settings(
                    self.spec, scenario,
                    performance_sample_count=self.plan.card.performance_sample_count,
                    dataset_count=dataset_count, estimates=estimates, calibrated=calibrated)
                paths.accuracy_user_conf.parent.mkdir(parents=True, exist_ok=True)
                self._user_conf(paths, scenario, keys, path=paths.accuracy_user_conf)
                write_text_atomic(paths.accuracy_user_conf.with_name("accuracy.run_spec.json"),
                                  json.dumps({"spec": self.spec.model_dump(mode="json"),
                                              "resolved": context}, indent=2) + "\n")
            return {}
        used = self._rewrite_user_conf(paths, scenario, calibrated)
        write_text_atomic(paths.run_spec, json.dumps(
            {"spec": self.spec.model_dump(mode="json"), "resolved": context}, indent=2
        ) + "\n")
        write_text_atomic(paths.versions, json.dumps(versions, indent=2) + "\n")
        return used

    def _user_conf(self, paths: ScenarioPaths, scenario: Scenario,
                   keys: dict[str, float | int], path: Path | None = None) -> None:
        plan = self.plan
        header = (f"Generated by mlperf-pilot for {plan.card.name} ({scenario.value}, "
                  f"execution mode {self.spec.execution_mode.value}).\n"
                  "Loaded with one TestSettings.FromConfig call after LoadGen's own mlperf.conf.")
        write_text_atomic(path or paths.user_conf,
                          render_user_conf(plan.card.mlperf_model, scenario, keys, header))


def _targets_of(keys: dict[str, float | int], scenario: Scenario) -> dict[str, Any]:
    """The targets a user.conf carries, in RunSpec units."""
    found: dict[str, Any] = {}
    if "target_qps" in keys:
        found["target_qps"] = keys["target_qps"]
    if "target_latency" in keys and scenario is not Scenario.SERVER:
        found["target_latency_ms"] = keys["target_latency"]
    return found


def run_benchmark(
    spec: RunSpec, *, cache: AssetCache | None = None, progress: Progress = NULL_PROGRESS,
    catalog: Catalog | None = None, transport: httpx.BaseTransport | None = None,
) -> RunSummary:
    """Plan and execute in one call (the Python API's entry point)."""
    plan = plan_run(spec, catalog)
    return BenchmarkRunner(plan, cache=cache, progress=progress, transport=transport).run()


__all__ = [
    "BenchmarkRunner", "Device", "RunPlan", "RunSummary", "measure_speed", "plan_run",
    "resolve_spec", "run_benchmark",
]

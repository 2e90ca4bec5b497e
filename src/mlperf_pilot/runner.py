"""The benchmark chain for one ``mlperf-pilot run``: plan, then execute.

    plan_run:  RunSpec + catalog -> RunPlan   (every name and combination checked first)
    execute:   model file -> dataset -> preprocessed samples -> backend -> warm-up
               -> per scenario: user.conf -> per mode: LoadGen -> logs -> accuracy
               -> RunRecord per (scenario, mode), written next to LoadGen's logs

Nothing here prints; progress goes through a Progress, results come back as records.
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.assets.models import resolve_model
from mlperf_pilot.backends import LoadOptions, backend_class, create_backend
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.catalog import Catalog, DatasetCard, ModelCard, ModelFormat, PreprocessSpec
from mlperf_pilot.catalog import load_catalog as _load_catalog
from mlperf_pilot.config import (
    Device,
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
from mlperf_pilot.decoders import Decoder, create_decoder
from mlperf_pilot.errors import BackendError, ConfigError, MlperfPilotError
from mlperf_pilot.loadgen.settings import Estimates, render_user_conf, user_conf_settings
from mlperf_pilot.progress import NULL_PROGRESS, Progress
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.provenance import collect_versions
from mlperf_pilot.results.records import STATUS_FAILED, RunRecord, read_record, write_record
from mlperf_pilot.testproc import DatasetRef, LoadGenJob

WARMUP_BUDGET_S = 3.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    fmt = card.format(spec.model_format)
    backend_name = spec.backend or card.default_backend
    cls = backend_class(backend_name)
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
    if dataset_card.layout != "imagenet" or card.task != "image-classification":
        raise ConfigError(
            f"{card.name} is an {card.task} model on {dataset_card.layout} data, which this "
            "version cannot run yet",
            hint="image classification (resnet50, mobilenet, the demo) is supported",
        )
    _check_paths(spec)
    return RunPlan(spec, card, fmt, dataset_card, catalog.recipe(fmt.preprocess), backend_name)


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

    @property
    def ok(self) -> bool:
        return bool(self.records) and all(r.ok for r in self.records)


def measure_speed(
    backend: Backend, decoder: Decoder, dataset: PreparedDataset, max_batch_size: int,
    budget_s: float = WARMUP_BUDGET_S,
) -> Estimates:
    """Warm the backend up and time batch 1 and a full batch the way the SUT runs them
    (gather into a buffer, predict, decode); also proves the model and the decoder work
    on real data before LoadGen starts."""
    sample = np.ascontiguousarray(dataset.read(0))[None]
    source = np.repeat(sample, max_batch_size, axis=0)
    buffer = np.empty_like(source)

    def timed(size: int, budget: float) -> float:
        rows = np.arange(size)
        times: list[float] = []
        spent = 0.0
        while len(times) < 5 and (len(times) < 2 or spent < budget):
            start = time.perf_counter()
            batch = source[:1] if size == 1 else np.take(source, rows, axis=0,
                                                          out=buffer[:size])
            outputs = backend.predict(batch)
            decoder.decode(outputs, rows)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            spent += elapsed
        return statistics.median(times[1:]) * 1000.0  # the first call pays for warm-up

    try:
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
    ) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.cache = cache or AssetCache(plan.spec.cache_dir or default_cache_dir())
        self.progress = progress
        self.transport = transport

    def run(self) -> RunSummary:
        plan, spec = self.plan, self.spec
        summary = RunSummary(records=[], results_dir=Path(spec.results_dir).resolve(),
                             system=plan.system)
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
        threads = spec.sut.threads or max(1, usable_cores() // spec.sut.workers)
        estimates, max_batch, device_in_use = self._warm_up(model_path, prepared, threads)
        backend_version = backend_class(plan.backend_name).version()
        summary.notes.append(
            f"backend {plan.backend_name} {backend_version or ''} on "
            f"{device_in_use}: {threads} intra-op thread(s) x {spec.sut.workers} "
            f"worker(s), batches of up to {max_batch}; warm-up: {estimates.latency_ms:.3g} ms "
            f"per sample, {estimates.offline_qps:.4g} samples/s at batch {max_batch}"
        )
        context = {
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
            "threads": threads,
            "max_batch_size": max_batch,
            "warmup_estimates": {"latency_ms": estimates.latency_ms,
                                 "batch_latency_ms": estimates.batch_latency_ms},
        }
        versions = collect_versions()
        dataset_ref = DatasetRef.of(prepared)
        for scenario in spec.scenarios:
            paths = ScenarioPaths.of(spec.results_dir, plan.system, plan.card.name, scenario)
            self._write_scenario_files(paths, scenario, prepared.count, estimates,
                                       context, versions)
            for mode in spec.modes:
                job = LoadGenJob(
                    spec=spec, model=plan.card.name, format_id=plan.fmt.id,
                    backend=plan.backend_name, system=plan.system, model_path=model_path,
                    dataset=dataset_ref, scenario=scenario, mode=mode,
                    scenario_root=paths.root, threads=threads,
                )
                summary.records.append(run_in_child(job, self.progress, prepared.count))
        return summary

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
            ))
        fixed = backend.fixed_batch_size
        max_batch = min(self.spec.sut.max_batch_size, fixed) if fixed else \
            self.spec.sut.max_batch_size
        device_in_use = backend.device_in_use
        try:
            with self.progress.task("warm-up"):
                estimates = measure_speed(backend, create_decoder(plan.fmt.postprocess),
                                          prepared, max_batch)
        finally:
            backend.close()
        return estimates, max_batch, device_in_use

    def _model(self, summary: RunSummary) -> Path | None:
        if self.plan.backend_name == "null":
            summary.model_source = "none (null backend)"
            return self.spec.model_path
        resolved = resolve_model(self.plan.card, self.plan.fmt, self.spec.model_path, self.cache,
                                 transport=self.transport, progress=self.progress)
        summary.model_source = ("cached " if resolved.from_cache else "") + resolved.source
        return resolved.path

    def _write_scenario_files(
        self, paths: ScenarioPaths, scenario: Scenario, dataset_count: int,
        estimates: Estimates, context: dict[str, Any], versions: dict[str, Any],
    ) -> None:
        plan = self.plan
        keys = user_conf_settings(
            self.spec, scenario, performance_sample_count=plan.card.performance_sample_count,
            dataset_count=dataset_count, estimates=estimates,
        )
        header = (f"Generated by mlperf-pilot for {plan.card.name} ({scenario.value}, "
                  f"execution mode {self.spec.execution_mode.value}).\n"
                  "Loaded with one TestSettings.FromConfig call after LoadGen's own mlperf.conf.")
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.user_conf.write_text(
            render_user_conf(plan.card.mlperf_model, scenario, keys, header), encoding="utf-8"
        )
        paths.run_spec.write_text(json.dumps(
            {"spec": self.spec.model_dump(mode="json"), "resolved": context}, indent=2
        ) + "\n", encoding="utf-8")
        paths.versions.write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")


def run_in_child(job: LoadGenJob, progress: Progress, total_samples: int) -> RunRecord:
    """Run one LoadGen test in a fresh Python process and return its record."""
    paths = ScenarioPaths(job.scenario_root)
    record_path = paths.record(job.mode)
    record_path.unlink(missing_ok=True)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    job_path = record_path.with_name(f"{job.mode.value}.job.json")
    job_path.write_text(job.model_dump_json(indent=2), encoding="utf-8")
    stderr_path = record_path.with_name(f"{job.mode.value}.stderr.txt")
    total = total_samples if job.mode is Mode.ACCURACY else None
    with stderr_path.open("w", encoding="utf-8") as err, \
            progress.task(f"{job.scenario.value} {job.mode.value}", total=total,
                          unit="samples") as task:
        child = subprocess.Popen(
            [sys.executable, "-m", "mlperf_pilot.testproc", str(job_path)],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
        try:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("progress "):
                    task.update(completed=int(line.split()[1]))
            child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
    if stderr_path.stat().st_size == 0:
        stderr_path.unlink()
    if record_path.is_file():
        return read_record(record_path)
    return _crashed_record(job, child.returncode, stderr_path)


def _crashed_record(job: LoadGenJob, returncode: int, stderr_path: Path) -> RunRecord:
    tail = ""
    if stderr_path.is_file():
        lines = stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = lines[-1] if lines else ""
    record = RunRecord(
        model=job.model, mlperf_model=job.model, backend=job.backend, backend_version=None,
        device=job.spec.device.value, device_in_use="unknown", system=job.system,
        scenario=job.scenario.value, mode=job.mode.value,
        log_dir=str(ScenarioPaths(job.scenario_root).log_dir(job.mode)), started=_now(),
        status=STATUS_FAILED,
        reasons=[f"the test process exited with code {returncode}"
                 + (f": {tail}" if tail else "") + f" (see {stderr_path})"],
    )
    write_record(record, ScenarioPaths(job.scenario_root).record(job.mode))
    return record


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

"""Preparing a planned run, once, in the parent: the dataset (resolved, preprocessed
into the cache), the SUT (its kind's prepare: e.g. the model file resolved, loaded and
timed), each scenario's thread layout, and the provenance every result records.
-> :class:`PreparedRun`, which the scenario sessions and the jobs are built from."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf_pilot.config.sut import SutConfig
from mlperf_pilot.datasets.prepared import NpyDirDataset, prepare_images, usable_cores
from mlperf_pilot.datasets.resolve import resolve_dataset
from mlperf_pilot.engine.job import DatasetRef, ModelRef
from mlperf_pilot.engine.plan import RunPlan
from mlperf_pilot.results.provenance import Provenance, Versions, WarmupEstimates
from mlperf_pilot.results.submittable import SubmissionFacts, round_benchmark
from mlperf_pilot.sut.kind import PrepareContext, PreparedSut
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    import httpx

    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.engine.events import RunObserver


@dataclass(frozen=True)
class PreparedRun:
    """Everything the scenario sessions need, resolved once."""

    plan: RunPlan
    run_id: str
    started: datetime.datetime
    command: str | None
    dataset: NpyDirDataset
    dataset_source: str
    sut: PreparedSut
    scenario_sut: dict[Scenario, SutConfig]  # the SUT config each scenario runs with
    dataset_root: Path  # the images' folder
    versions: Versions = field(repr=False)

    @property
    def model_ref(self) -> ModelRef:
        plan = self.plan
        return ModelRef(name=plan.card.name, mlperf_model=plan.card.mlperf_model,
                        fmt=plan.fmt, recipe=plan.recipe,
                        performance_sample_count=plan.card.performance_sample_count,
                        accuracy_metric=plan.card.accuracy.metric)

    @property
    def dataset_ref(self) -> DatasetRef:
        return DatasetRef.of(self.dataset)

    def submission_facts(self, scenario: Scenario) -> SubmissionFacts:
        """What each record of the scenario is judged against for a submission: the
        round's benchmark and its data set size (else the dataset card's), the card's
        closed-division accuracy target, whether the model file was verified."""
        plan, spec = self.plan, self.plan.spec
        benchmark = round_benchmark(spec.round, plan.card.benchmark)
        size = None
        if benchmark is not None:
            from mlperf_pilot.submission.rounds import load_round

            size = load_round(spec.round).models[benchmark].samples_for(scenario.value)
        return SubmissionFacts(
            execution_mode=spec.execution_mode, round=spec.round, benchmark=benchmark,
            dataset_size=size or plan.dataset_card.size,
            accuracy_target=plan.card.accuracy.closed_target,
            model_verified=self.sut.model_verified)

    def provenance(self, scenario: Scenario) -> Provenance:
        """The ``resolved`` part of a scenario's run_spec.json."""
        sut, config = self.sut, self.scenario_sut[scenario]
        return Provenance(
            command=self.command, run_id=self.run_id, started=self.started,
            system=self.plan.system, sut_kind=config.kind,
            model_path=sut.model_path, model_source=sut.model_source,
            model_verified=sut.model_verified,
            dataset_root=self.dataset_root, dataset_source=self.dataset_source,
            dataset_count=self.dataset.count, preprocessed=self.dataset.folder,
            preprocessing_library=self.dataset.library, backend=sut.name,
            backend_version=sut.version, device_in_use=sut.device_in_use,
            max_batch_size=sut.max_batch_size,
            warmup_estimates=WarmupEstimates(latency_ms=sut.estimates.latency_ms,
                                             batch_latency_ms=sut.estimates.batch_latency_ms),
            workers=config.workers, threads=getattr(config, "threads", None),
            versions=self.versions,
        )


def prepare_run(plan: RunPlan, *, cache: AssetCache, observer: RunObserver, run_id: str,
                started: datetime.datetime, command: str | None = None,
                transport: httpx.BaseTransport | None = None) -> PreparedRun:
    spec, kind = plan.spec, plan.kind
    # the model first: a wrong or missing file is found before any preprocessing
    found = kind.resolve(spec, plan.sut, plan.card, cache=cache, progress=observer,
                         transport=transport)
    resolved = resolve_dataset(plan.dataset_card, spec.dataset_path, cache, count=spec.count,
                               progress=observer)
    for note in resolved.notes:
        observer.run_note(note)
    prepared = prepare_images(resolved.images, plan.recipe, cache,
                              workers=spec.preprocess_workers, progress=observer)
    if prepared.library != plan.recipe.resize.library:
        observer.run_note(
            f"preprocessing used {prepared.library}, not {plan.recipe.resize.library} as "
            "the reference does (install the [opencv] extra for reference pixels)")
    cores = usable_cores()
    # the warm-up estimates one worker's speed, as Offline runs it
    probe_config = kind.scenario_config_of(spec.sut, Scenario.OFFLINE, cores, plan.sut.parallel)
    sut = kind.prepare(PrepareContext(
        spec=spec, card=plan.card, plan=plan.sut, resolved=found, recipe=plan.recipe,
        dataset=prepared,
        cache=cache, progress=observer, transport=transport,
        threads=getattr(probe_config, "threads", 1)))
    for note in sut.notes:
        observer.run_note(note)
    if sut.model_verified is False:
        observer.run_note(unverified_note(plan, sut))
    scenario_sut = {scenario: kind.scenario_config_of(sut.config, scenario, cores,
                                                      plan.sut.parallel)
                    for scenario in spec.scenarios}
    observer.run_note(_layout_note(plan, sut, scenario_sut))
    run = PreparedRun(plan=plan, run_id=run_id, started=started, command=command,
                      dataset=prepared,
                      dataset_source=resolved.source, sut=sut, scenario_sut=scenario_sut,
                      versions=Versions.collect(), dataset_root=resolved.images.root)
    observer.prepared(run)
    return run


def unverified_note(plan: RunPlan, sut: PreparedSut) -> str:
    """What a run says when its model file was never checked against a pinned checksum."""
    from mlperf_pilot.assets.models import cache_name

    name = cache_name(plan.card, plan.fmt)
    where = sut.model_source if str(sut.model_path) in sut.model_source else \
        f"{sut.model_path or plan.card.name} ({sut.model_source})"
    return (f"model unverified: {where} was not checked against the catalog's checksum; "
            "results are marked model_verified=false and a closed-division submission refuses them "
            f"(`mlperf-pilot cache add {name} FILE` checks the official file)")


def _layout_note(plan: RunPlan, sut: PreparedSut, scenario_sut: dict[Scenario, SutConfig]
                 ) -> str:
    by_layout: dict[tuple[int, int | None], list[str]] = {}
    for scenario, config in scenario_sut.items():
        key = (config.workers, getattr(config, "threads", None))
        by_layout.setdefault(key, []).append(scenario.value)
    local = "threads" in type(sut.config).model_fields  # else requests to a server
    shapes = "; ".join(
        (f"{w} worker(s)" + (f" x {t} intra-op thread(s)" if t is not None else "")
         if local else f"{w} request(s) in flight")
        + (f" ({', '.join(names)})" if len(by_layout) > 1 else "")
        for (w, t), names in by_layout.items())
    estimates = sut.estimates
    what = "backend" if local else "server"
    return (f"{what} {sut.name} {sut.version or ''} on {sut.device_in_use}: {shapes}, "
            f"batches of up to {sut.max_batch_size}; warm-up: {estimates.latency_ms:.3g} ms "
            f"per sample, {estimates.offline_qps:.4g} samples/s at batch {sut.max_batch_size}")


__all__ = ["PreparedRun", "prepare_run"]

"""Fetching a planned run's assets without running it (``mlperf-pilot cache fetch``).

The first steps of :func:`~mlperf_pilot.engine.prepare.prepare_run`, alone: the model
file (cached, built, converted or downloaded, and verified against the card's checksum),
the dataset (resolved: registered, packaged or downloaded) and its preprocessed samples,
all into the asset cache, each skipped when the cache has it already. No model is loaded,
so it needs no accelerator: a pipeline's asset step fetches what its run steps use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlperf_pilot.datasets.prepared import prepare_images
from mlperf_pilot.datasets.resolve import resolve_dataset
from mlperf_pilot.engine.events import RunObserver

if TYPE_CHECKING:
    from pathlib import Path

    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.engine.plan import RunPlan


@dataclass(frozen=True)
class FetchedAssets:
    model: str  # where the model file came from ("cached ...", a URL, ...)
    model_path: Path | None
    model_verified: bool | None
    dataset: str  # where the dataset came from
    samples: int  # preprocessed samples in the cache
    notes: list[str] = field(default_factory=list)


def fetch_assets(plan: RunPlan, *, cache: AssetCache,
                 observer: RunObserver | None = None) -> FetchedAssets:
    observer = observer or RunObserver()
    spec = plan.spec
    found = plan.kind.resolve(spec, plan.sut, plan.card, cache=cache, progress=observer)
    resolved = resolve_dataset(plan.dataset_card, spec.dataset_path, cache, count=spec.count,
                               progress=observer)
    prepared = prepare_images(resolved.images, plan.recipe, cache,
                              workers=spec.preprocess_workers, progress=observer)
    return FetchedAssets(model=found.source,
                         model_path=getattr(found.config, "model_path", None),
                         model_verified=found.model_verified, dataset=resolved.source,
                         samples=prepared.count, notes=list(resolved.notes))


__all__ = ["FetchedAssets", "fetch_assets"]

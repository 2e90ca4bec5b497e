"""Find the dataset a run needs (--dataset-path, a folder registered with ``cache add``,
or a set the project builds itself: the demos) and read its index in the card's layout
(ImageNet ``val_map.txt``, or a COCO-format annotation file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.catalog.cards import DatasetCard
from mlperf_pilot.datasets.demo import build_demo_set
from mlperf_pilot.datasets.imagenet import ImageList
from mlperf_pilot.datasets.layouts import read_dataset
from mlperf_pilot.errors import DatasetInputError
from mlperf_pilot.progress import NULL_PROGRESS, Progress


@dataclass
class ResolvedDataset:
    images: ImageList
    source: str  # where it came from, for the record
    notes: list[str] = field(default_factory=list)


def dataset_root(
    card: DatasetCard, dataset_path: Path | None, cache: AssetCache,
    progress: Progress = NULL_PROGRESS,
) -> tuple[Path, str, list[str]]:
    """(root folder, source description, notes) for the dataset of a run."""
    if dataset_path is not None:
        return Path(dataset_path).expanduser().resolve(), f"--dataset-path {dataset_path}", []
    registered = cache.find_external("dataset", card.name)
    if registered is not None:
        return registered.target, f"registered with `cache add` ({registered.target})", []
    if card.builder == "demo-photos":
        demo = build_demo_set(card, cache, progress=progress)
        notes = [f"demo photo skipped: {s}" for s in demo.skipped]
        how = "built" if demo.built_now else "cached"
        return demo.root, f"{how} demo set ({len(demo.photos)} photos)", notes
    raise DatasetInputError(  # a missing input, as a missing file: exit 2
        f"no local copy of {card.title}",
        hint=card.how_to_get or f"pass --dataset-path, or `mlperf-pilot cache add {card.name} DIR`",
    )


def resolve_dataset(
    card: DatasetCard, dataset_path: Path | None, cache: AssetCache, *, count: int | None,
    progress: Progress = NULL_PROGRESS,
) -> ResolvedDataset:
    root, source, notes = dataset_root(card, dataset_path, cache, progress)
    images = read_dataset(card, root, count=count)
    if count is not None and count > len(images):
        notes = [*notes, f"--count {count} is more than the {len(images)} samples of the "
                 f"data set: capped to {len(images)}"]
    return ResolvedDataset(images=images, source=source, notes=notes)

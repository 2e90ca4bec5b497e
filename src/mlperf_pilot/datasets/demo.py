"""The built-in demo set: packaged photos with ImageNet labels, in ImageNet layout.

The photos and their labels are data in the dataset card (``demo-imagenet.yaml``),
each pinned by sha256. This module finds each photo (a Python package file, or a
Debian package file installed or fetched into the cache), checks its hash, and lays
the available ones out as ``images/<nn>-<id>.<ext>`` plus ``val_map.txt`` in a cache
entry keyed by the exact photo list. Photos that cannot be had here are reported,
not hidden.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_pilot.assets.cache import AssetCache, BuildResult, CacheEntry
from mlperf_pilot.assets.packaged import (
    debian_tools_missing,
    fetch_debian_files,
    python_package_file,
)
from mlperf_pilot.catalog.cards import DatasetCard, DemoPhoto
from mlperf_pilot.errors import AssetError, DatasetError
from mlperf_pilot.progress import NULL_PROGRESS, Progress

BUILDER_VERSION = 1


@dataclass
class DemoSet:
    entry: CacheEntry
    built_now: bool
    photos: list[DemoPhoto]
    skipped: list[str] = field(default_factory=list)  # "<id>: <reason>"

    @property
    def root(self) -> Path:
        return self.entry.target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate_photos(
    card: DatasetCard, cache: AssetCache, *, use_debian: bool = True,
    progress: Progress = NULL_PROGRESS,
) -> tuple[dict[str, Path], list[str]]:
    """Find every photo of the card that can be had here: ({id: path}, skipped)."""
    found: dict[str, Path] = {}
    skipped: list[str] = []
    by_package: dict[str, list[DemoPhoto]] = defaultdict(list)
    for photo in card.photos:
        if photo.source.kind == "python":
            path = python_package_file(photo.source.package, photo.source.path)
            if path is None:
                skipped.append(f"{photo.id}: Python package {photo.source.package} not installed")
            else:
                found[photo.id] = path
        else:
            installed = Path(photo.source.path)
            if installed.is_file():
                found[photo.id] = installed
            else:
                by_package[photo.source.package].append(photo)
    for package, photos in by_package.items():
        reason = None if use_debian else "Debian photos disabled"
        reason = reason or debian_tools_missing()
        if reason is None:
            try:
                with progress.task(f"fetching Debian package {package}"):
                    entry, _ = fetch_debian_files(cache, package, [p.source.path for p in photos])
                for photo in photos:
                    found[photo.id] = entry.path / photo.source.path.lstrip("/")
            except AssetError as exc:
                reason = exc.message
        if reason is not None:
            skipped.extend(f"{photo.id}: {reason}" for photo in photos)
    # a file of a different version than the one labelled is not used
    for photo in card.photos:
        path = found.get(photo.id)
        if path is not None and _sha256(path) != photo.sha256:
            skipped.append(f"{photo.id}: {path} differs from the labelled file (sha256)")
            del found[photo.id]
    return found, skipped


def build_demo_set(
    card: DatasetCard, cache: AssetCache, *, use_debian: bool = True,
    progress: Progress = NULL_PROGRESS,
) -> DemoSet:
    """The demo set as a cache entry (built on first use)."""
    found, skipped = locate_photos(card, cache, use_debian=use_debian, progress=progress)
    photos = [p for p in card.photos if p.id in found]
    if not photos:
        raise DatasetError(
            "none of the demo photos is available",
            hint="pip install 'mlperf-pilot[demo]' (scikit-image, scikit-learn, matplotlib)",
        )
    recipe = {
        "builder": f"demo-photos/{BUILDER_VERSION}",
        "photos": [[p.id, p.sha256, p.label] for p in photos],
    }

    def build(folder: Path) -> BuildResult:
        images = folder / "images"
        images.mkdir()
        lines = []
        for number, photo in enumerate(photos):
            source = found[photo.id]
            name = f"{number:02d}-{photo.id}{source.suffix.lower()}"
            shutil.copyfile(source, images / name)
            lines.append(f"images/{name} {photo.label}")
        (folder / "val_map.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return BuildResult(
            main=None, source="packaged photos (Python and Debian packages)",
            meta={"photos": len(photos), "skipped": skipped},
        )

    entry, built = cache.get_or_build("dataset", card.name, recipe, build)
    return DemoSet(entry=entry, built_now=built, photos=photos, skipped=skipped)

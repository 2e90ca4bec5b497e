"""The built-in demo sets: packaged photos with labels or boxes written by the project.

The photos and their ground truth are data in the dataset cards (``demo-imagenet.yaml``:
an ImageNet class per photo; ``demo-coco.yaml``: COCO boxes per photo), each photo
pinned by sha256. This module finds each photo (a Python package file, or a Debian
package file installed or fetched into the cache), checks its hash, and lays the
available ones out in the card's layout in a cache entry keyed by the exact photo list
and ground truth: ``images/<nn>-<id>.<ext>`` plus ``val_map.txt`` (ImageNet), or
``<image_dir>/<nn>-<id>.<ext>`` plus a COCO annotation json (COCO). Photos that cannot
be had here are reported, not hidden.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mlperf_pilot.assets.cache import AssetCache, BuildResult, CacheEntry
from mlperf_pilot.assets.packaged import (
    debian_tools_missing,
    fetch_debian_files,
    python_package_file,
)
from mlperf_pilot.catalog.cards import DatasetCard, DemoPhoto
from mlperf_pilot.errors import AssetError, DatasetError
from mlperf_pilot.progress import NULL_PROGRESS, Progress
from mlperf_pilot.storage import file_sha256

BUILDER_VERSION = 1
COCO_BUILDER_VERSION = 1


@dataclass
class DemoSet:
    entry: CacheEntry
    built_now: bool
    photos: list[DemoPhoto]
    skipped: list[str] = field(default_factory=list)  # "<id>: <reason>"

    @property
    def root(self) -> Path:
        return self.entry.target


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
                entry, _ = fetch_debian_files(cache, package, [p.source.path for p in photos],
                                              progress=progress)
                for photo in photos:
                    found[photo.id] = entry.path / photo.source.path.lstrip("/")
            except AssetError as exc:
                reason = exc.message
        if reason is not None:
            skipped.extend(f"{photo.id}: {reason}" for photo in photos)
    # a file of a different version than the one labelled is not used
    for photo in card.photos:
        path = found.get(photo.id)
        if path is not None and file_sha256(path) != photo.sha256:
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
    if card.layout == "imagenet":
        recipe: dict[str, object] = {
            "builder": f"demo-photos/{BUILDER_VERSION}",
            "photos": [[p.id, p.sha256, p.label] for p in photos],
        }
    else:
        recipe = {
            "builder": f"demo-photos-coco/{COCO_BUILDER_VERSION}",
            "photos": [[p.id, p.sha256, [[b.category, list(b.bbox)] for b in p.boxes],
                        [[b.category, list(b.bbox)] for b in p.crowd]] for p in photos],
            "categories": card.categories,
        }

    def build(folder: Path) -> BuildResult:
        names = [f"{number:02d}-{photo.id}{found[photo.id].suffix.lower()}"
                 for number, photo in enumerate(photos)]
        image_dir = folder / ("images" if card.layout == "imagenet" else card.image_dir)
        image_dir.mkdir(parents=True)
        for photo, name in zip(photos, names, strict=True):
            shutil.copyfile(found[photo.id], image_dir / name)
        if card.layout == "imagenet":
            lines = [f"images/{name} {photo.label}" for photo, name in zip(photos, names,
                                                                          strict=True)]
            (folder / "val_map.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            write_coco_annotations(card, photos, [image_dir / n for n in names],
                                   folder / (card.annotations or "annotations.json"))
        return BuildResult(
            main=None, source="packaged photos (Python and Debian packages)",
            meta={"photos": len(photos), "skipped": skipped},
        )

    entry, built = cache.get_or_build("dataset", card.name, recipe, build)
    return DemoSet(entry=entry, built_now=built, photos=photos, skipped=skipped)


def write_coco_annotations(card: DatasetCard, photos: list[DemoPhoto], files: list[Path],
                           target: Path) -> None:
    """The card's boxes as a COCO annotation file (image ids 1.. in photo order; crowd
    regions as ``iscrowd: 1``)."""
    images, annotations = [], []
    for image_id, (photo, path) in enumerate(zip(photos, files, strict=True), start=1):
        with Image.open(path) as img:
            width, height = img.size
        images.append({"id": image_id, "file_name": path.name, "height": height,
                       "width": width})
        for crowd, boxes in ((0, photo.boxes), (1, photo.crowd)):
            for box in boxes:
                x, y, w, h = (float(v) for v in box.bbox)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id,
                    "category_id": card.categories[box.category], "bbox": [x, y, w, h],
                    "area": w * h, "iscrowd": crowd,
                })
    categories = [{"id": cid, "name": name, "supercategory": ""}
                  for name, cid in sorted(card.categories.items(), key=lambda kv: kv[1])]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({
        "info": {"description": card.title}, "licenses": [], "images": images,
        "annotations": annotations, "categories": categories,
    }, indent=1), encoding="utf-8")

"""Detection sets in COCO format: COCO 2017, the COCO "safe" subset, MLPerf OpenImages.

The annotation file (COCO json) lists the images; its ``images`` array, in file order,
is the QSL order, as in the reference (``coco.py``/``openimages.py``) and as the
reference accuracy scripts index it (``qsl_idx`` → ``images[qsl_idx]``). Images live
in ``<root>/<image_dir>/<file_name>``. Unlike the reference, which silently drops
images it cannot find (shifting every later index against the accuracy script's
``images`` list), a missing image, an image whose pixel size disagrees with the
annotation file, or a malformed annotation file is a DatasetError naming it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlperf_pilot.datasets.imagenet import ImageList
from mlperf_pilot.errors import DatasetError


def read_annotations(path: Path) -> dict[str, Any]:
    """The annotation json, checked for what the pipeline and COCOeval need."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"annotation file {path} does not exist",
            hint="a COCO-format folder needs its annotation json (see `mlperf-pilot list "
            "datasets` for the expected layout)",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(
            f"annotation file {path} is not valid JSON ({exc})",
            hint="re-extract or re-download the annotations",
        ) from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"annotation file {path} is not a COCO json object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise DatasetError(
                f"annotation file {path} has no {key!r} list",
                hint="COCO format needs 'images', 'annotations' and 'categories'",
            )
    for number, image in enumerate(raw["images"]):
        if not isinstance(image, dict) or not all(
                k in image for k in ("id", "file_name", "height", "width")):
            raise DatasetError(
                f"annotation file {path}: images[{number}] lacks id, file_name, height or "
                "width",
                hint="every image entry needs all four",
            )
    if not raw["images"]:
        raise DatasetError(f"annotation file {path} lists no images")
    return raw


def load_coco(
    root: Path, *, annotations: str, image_dir: str, count: int | None = None,
    name: str = "coco", check_sizes: bool = True,
) -> ImageList:
    """Read a COCO-format folder; every listed image (up to ``count``) must exist and,
    with ``check_sizes``, have the size the annotation file gives it (the accuracy
    script scales boxes by that size)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist",
            hint=f"pass --dataset-path with the folder that holds {annotations} and "
            f"{image_dir}/",
        )
    ann_path = root / annotations
    raw = read_annotations(ann_path)
    digest = hashlib.sha256(ann_path.read_bytes()).hexdigest()
    images = raw["images"][:count] if count is not None else raw["images"]
    files = tuple(str(Path(image_dir) / str(img["file_name"])) for img in images)
    sizes = np.asarray([[int(img["height"]), int(img["width"])] for img in images],
                       dtype=np.int64)
    missing = [rel for rel in files if not (root / rel).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(
            f"image {root / missing[0]} listed in {ann_path} does not exist{more}",
            hint="restore the missing files, or use an annotation file that lists only the "
            "images you have",
        )
    if check_sizes:
        for rel, (height, width) in zip(files, sizes, strict=True):
            actual = _pixel_size(root / rel)
            if actual != (height, width):
                raise DatasetError(
                    f"image {root / rel} is {actual[1]}x{actual[0]} pixels but {ann_path} "
                    f"says {width}x{height}",
                    hint="the image and the annotation file are from different versions",
                )
    return ImageList(
        name=name, root=root, files=files,
        labels=np.full(len(files), -1, dtype=np.int64),
        list_digest=digest, annotations=ann_path, image_hw=sizes,
    )


def _pixel_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(
            f"image {path} cannot be read: {exc}",
            hint="replace the file with a valid JPEG/PNG",
        ) from exc
    return int(height), int(width)

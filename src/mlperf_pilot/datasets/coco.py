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
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlperf_pilot.datasets.imagenet import ImageList
from mlperf_pilot.errors import ConfigError, DatasetInputError

if TYPE_CHECKING:
    from mlperf_pilot.catalog.cards import DatasetCard


def read_annotations(path: Path) -> dict[str, Any]:
    """The annotation json, checked for what the pipeline and COCOeval need."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetInputError(
            f"annotation file {path} does not exist",
            hint="a COCO-format folder needs its annotation json (see `mlperf-pilot list "
            "datasets` for the expected layout)",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetInputError(
            f"annotation file {path} is not valid JSON ({exc})",
            hint="re-extract or re-download the annotations",
        ) from exc
    if not isinstance(raw, dict):
        raise DatasetInputError(f"annotation file {path} is not a COCO json object",
                           hint="COCO format is an object with 'images', 'annotations' and "
                           "'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise DatasetInputError(
                f"annotation file {path} has no {key!r} list",
                hint="COCO format needs 'images', 'annotations' and 'categories'",
            )
    if not raw["images"]:
        raise DatasetInputError(f"annotation file {path} lists no images",
                           hint="use the annotation file that lists the dataset's images")
    _check_entries(path, raw)
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
        raise DatasetInputError(
            f"dataset folder {root} does not exist",
            hint=f"pass --dataset-path with the folder that holds {annotations} and "
            f"{image_dir}/",
        )
    ann_path = root / annotations
    raw = read_annotations(ann_path)
    digest = hashlib.sha256(ann_path.read_bytes()).hexdigest()
    images = raw["images"][:count] if count is not None else raw["images"]
    files = tuple(str(Path(image_dir) / str(img["file_name"])) for img in images)
    sizes = np.asarray([[img["height"], img["width"]] for img in images], dtype=np.int64)
    missing = [rel for rel in files if not (root / rel).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetInputError(
            f"image {root / missing[0]} listed in {ann_path} does not exist{more}",
            hint="restore the missing files, or use an annotation file that lists only the "
            "images you have",
        )
    if check_sizes:
        for rel, (height, width) in zip(files, sizes, strict=True):
            actual = _pixel_size(root / rel)
            if actual != (height, width):
                raise DatasetInputError(
                    f"image {root / rel} is {actual[1]}x{actual[0]} pixels but {ann_path} "
                    f"says {width}x{height}",
                    hint="the image and the annotation file are from different versions",
                )
    return ImageList(
        name=name, root=root, files=files,
        labels=np.full(len(files), -1, dtype=np.int64),
        list_digest=digest, annotations=ann_path, image_hw=sizes,
    )


_FIX = "fix the entry in the annotation file, or use the dataset's original annotations"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _is_id(value: object) -> bool:
    """COCO ids are integers (some converters write strings; pycocotools takes both)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and bool(value))


def _is_pixels(value: object) -> bool:
    return _is_number(value) and float(value).is_integer() and value > 0  # type: ignore[arg-type]


def _refuse(path: Path, entry: str, problem: str) -> DatasetInputError:
    return DatasetInputError(f"annotation file {path}: {entry} {problem}", hint=_FIX)


def _check_entries(path: Path, raw: dict[str, Any]) -> None:
    """Every entry COCOeval and the pipeline read, checked once at load: image ids and
    sizes, annotation boxes, and that every annotation points at an image and a category
    the file defines (the reference tools drop the others silently, or fail deep inside
    pycocotools)."""
    image_ids: dict[int, int] = {}
    for number, image in enumerate(raw["images"]):
        entry = f"images[{number}]"
        if not isinstance(image, dict) or not all(
                k in image for k in ("id", "file_name", "height", "width")):
            raise DatasetInputError(
                f"annotation file {path}: {entry} lacks id, file_name, height or width",
                hint="every image entry needs all four",
            )
        if not _is_id(image["id"]):
            raise _refuse(path, entry, f"has id {image['id']!r}, not an integer or a name")
        if image["id"] in image_ids:
            raise _refuse(path, entry, f"repeats id {image['id']} of "
                          f"images[{image_ids[image['id']]}]")
        image_ids[image["id"]] = number
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise _refuse(path, entry, f"has file_name {image['file_name']!r}")
        for key in ("height", "width"):
            value = image[key]
            if not _is_pixels(value):
                raise _refuse(path, entry, f"({image['file_name']}) has {key} {value!r}, "
                              "not a positive whole number of pixels")
    category_ids = set()
    for number, category in enumerate(raw["categories"]):
        if not isinstance(category, dict) or not _is_id(category.get("id")):
            raise _refuse(path, f"categories[{number}]", "has no id")
        category_ids.add(category["id"])
    for number, annotation in enumerate(raw["annotations"]):
        entry = f"annotations[{number}]"
        if not isinstance(annotation, dict):
            raise _refuse(path, entry, "is not an object")
        for key in ("image_id", "category_id", "bbox"):
            if key not in annotation:
                raise _refuse(path, entry, f"has no {key}")
        image_id, category_id = annotation["image_id"], annotation["category_id"]
        if not _is_id(image_id) or image_id not in image_ids:
            raise _refuse(path, entry, f"has image_id {image_id!r}, which is not in 'images'")
        if not _is_id(category_id) or category_id not in category_ids:
            raise _refuse(path, entry, f"has category_id {category_id!r}, which is not in "
                          "'categories'")
        bbox = annotation["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
            raise _refuse(path, entry, f"has bbox {bbox!r}; a box is 4 finite numbers "
                          "[x, y, width, height]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise _refuse(path, entry, f"has bbox {bbox!r} with a negative width or height")
        for key in ("area", "iscrowd"):
            if key in annotation and not _is_number(annotation[key]):
                raise _refuse(path, entry, f"has {key} {annotation[key]!r}, not a number")


def _pixel_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetInputError(
            f"image {path} cannot be read: {exc}",
            hint="replace the file with a valid JPEG/PNG",
        ) from exc
    return int(height), int(width)


def read_coco_layout(card: DatasetCard, root: Path, count: int | None) -> ImageList:
    """The ``coco`` and ``openimages`` dataset layouts: a COCO-format annotation file
    and an image folder."""
    if not card.annotations:
        raise ConfigError(f"dataset card {card.name} names no annotation file",
                          hint="give the card an `annotations:` path (relative to the set)")
    return load_coco(root, annotations=card.annotations, image_dir=card.image_dir,
                     count=count, name=card.name)

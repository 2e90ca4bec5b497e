"""ImageNet in MLPerf's layout: a folder of images and ``val_map.txt``.

Each line of the list file is ``<relative image path> <label 0-999>``; line ``i`` is
QSL index ``i``. Unlike the reference (which silently drops missing images and so
shifts every later index), a missing or unlisted image is a DatasetError naming it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_pilot.errors import DatasetError


@dataclass(frozen=True)
class ImageList:
    """The images of a dataset in QSL order, with what accuracy needs: class labels
    (classification) or the annotation file and each image's size (detection)."""

    name: str
    root: Path
    files: tuple[str, ...]  # relative to root, in QSL order
    labels: np.ndarray  # int64, one per file (-1 for detection sets)
    list_digest: str  # sha256 of the whole list/annotation file (before --count)
    annotations: Path | None = None  # detection: the COCO-format annotation json
    image_hw: np.ndarray | None = None  # detection: (count, 2) height, width per image

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.root / self.files[index]

    def fingerprint(self) -> dict[str, str]:
        """Identifies the data independent of --count, for the preprocessing cache."""
        return {"name": self.name, "root": str(self.root), "list_sha256": self.list_digest}


def parse_val_map(path: Path) -> list[tuple[str, int]]:
    """Parse a val_map.txt; a malformed line is a DatasetError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"list file {path} does not exist",
            hint="an ImageNet folder needs val_map.txt with '<image> <label>' per line",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"list file {path} cannot be read: {exc}") from exc
    entries: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(
                f"{path}:{number}: expected '<image> <label>', got {line.strip()!r}",
                hint="fix or remove that line",
            )
        name, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            raise DatasetError(
                f"{path}:{number}: label {label_text!r} is not an integer",
                hint="labels are ImageNet class indices 0-999",
            ) from None
        if label < 0:
            raise DatasetError(f"{path}:{number}: negative label {label}")
        entries.append((name, label))
    if not entries:
        raise DatasetError(f"list file {path} lists no images", hint="add '<image> <label>' lines")
    return entries


def load_imagenet(
    root: Path, *, list_file: str = "val_map.txt", count: int | None = None,
    name: str = "imagenet",
) -> ImageList:
    """Read an ImageNet-layout folder; checks that every listed image (up to ``count``)
    exists."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist",
            hint="pass --dataset-path with the folder that holds the images and val_map.txt",
        )
    list_path = root / list_file
    entries = parse_val_map(list_path)
    digest = hashlib.sha256(list_path.read_bytes()).hexdigest()
    if count is not None:
        entries = entries[:count]
    missing = [rel for rel, _ in entries if not (root / rel).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(
            f"image {root / missing[0]} listed in {list_path} does not exist{more}",
            hint="restore the missing files, or remove their lines from the list file",
        )
    return ImageList(
        name=name,
        root=root,
        files=tuple(rel for rel, _ in entries),
        labels=np.asarray([label for _, label in entries], dtype=np.int64),
        list_digest=digest,
    )

"""ImageNet in MLPerf's layout: a folder of images and ``val_map.txt``.

Each line of the list file is ``<relative image path> <label 0-999>``; line ``i`` is
QSL index ``i``. Unlike the reference (which silently drops missing images and so
shifts every later index), a missing or unlisted image is a DatasetError naming it.
The list file is UTF-8 (a BOM and CRLF line ends are accepted); a path that leads
outside the dataset folder (absolute, or ``..`` past the root) and a label outside
the dataset's classes are refused with the line number.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlperf_pilot.errors import DatasetInputError

if TYPE_CHECKING:
    from mlperf_pilot.catalog.cards import DatasetCard


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


IMAGENET_CLASSES = 1000


def _read_list_text(path: Path) -> str:
    """The list file as text: UTF-8 with or without a BOM; line ends of any kind."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetInputError(
            f"list file {path} does not exist",
            hint="an ImageNet folder needs val_map.txt with '<image> <label>' per line",
        ) from None
    except OSError as exc:
        raise DatasetInputError(f"list file {path} cannot be read: {exc.strerror or exc}",
                           hint="check the file's permissions") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetInputError(
            f"list file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
            f"{line})",
            hint="save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 val_map.txt > fixed.txt` "
            "and rename fixed.txt to val_map.txt",
        ) from None


def _outside_reason(name: str) -> str | None:
    """Why a listed image path would be read outside the dataset folder, or None.

    Checked on the name as written (either separator), so a symlinked subfolder of
    the dataset stays allowed."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":" and posix[0].isalpha()):
        return "is an absolute path"
    normal = posixpath.normpath(posix)
    if normal == ".." or normal.startswith("../"):
        return "leads outside the dataset folder"
    return None


def parse_val_map(path: Path, *, classes: int = IMAGENET_CLASSES) -> list[tuple[str, int]]:
    """Parse a val_map.txt; a malformed line is a DatasetError naming file and line.

    Image paths must stay inside the dataset folder and labels must be class indices
    ``0 .. classes-1``."""
    text = _read_list_text(path)
    entries: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetInputError(
                f"{path}:{number}: expected '<image> <label>', got {line.strip()!r}",
                hint="fix or remove that line",
            )
        name, label_text = parts
        reason = _outside_reason(name)
        if reason is not None:
            raise DatasetInputError(
                f"{path}:{number}: image {name!r} {reason}; it is outside the dataset folder",
                hint="list images by their path relative to the folder that holds "
                "val_map.txt (move the images there, or link them in)",
            )
        if not re.fullmatch(r"[+-]?\d+", label_text):
            raise DatasetInputError(
                f"{path}:{number}: label {label_text!r} is not an integer",
                hint=f"labels are class indices 0-{classes - 1}",
            )
        label = int(label_text)
        if not 0 <= label < classes:
            shown = label_text if len(label_text) <= 24 else label_text[:21] + "..."
            raise DatasetInputError(
                f"{path}:{number}: label {shown} is outside 0-{classes - 1}, the "
                f"{classes} classes of this dataset",
                hint="fix that line (labels are 0-based class indices, without the "
                "background class some models add)",
            )
        entries.append((name, label))
    if not entries:
        raise DatasetInputError(f"list file {path} lists no images",
                                hint="add '<image> <label>' lines")
    return entries


def load_imagenet(
    root: Path, *, list_file: str = "val_map.txt", count: int | None = None,
    name: str = "imagenet", classes: int = IMAGENET_CLASSES,
) -> ImageList:
    """Read an ImageNet-layout folder; checks that every listed image (up to ``count``)
    exists."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetInputError(
            f"dataset folder {root} does not exist",
            hint="pass --dataset-path with the folder that holds the images and val_map.txt",
        )
    list_path = root / list_file
    entries = parse_val_map(list_path, classes=classes)
    digest = hashlib.sha256(list_path.read_bytes()).hexdigest()
    if count is not None:
        entries = entries[:count]
    missing = [rel for rel, _ in entries if not (root / rel).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetInputError(
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


def read_imagenet_layout(card: DatasetCard, root: Path, count: int | None) -> ImageList:
    """The ``imagenet`` dataset layout: the card's list file (``val_map.txt``)."""
    return load_imagenet(root, list_file=card.list_file or "val_map.txt", count=count,
                         name=card.name, classes=card.classes)

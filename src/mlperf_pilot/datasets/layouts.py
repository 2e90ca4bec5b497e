"""Dataset layouts: a card's ``layout`` -> the reader of a folder in that layout.

A reader takes the dataset card, the folder and the sample count (None: all) and
returns the :class:`~mlperf_pilot.datasets.imagenet.ImageList` in QSL order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf_pilot.registry import Registry

if TYPE_CHECKING:
    from mlperf_pilot.catalog.cards import DatasetCard
    from mlperf_pilot.datasets.imagenet import ImageList

LayoutReader = Callable[["DatasetCard", Path, "int | None"], "ImageList"]

LAYOUTS: Registry[LayoutReader] = Registry("dataset layout", {
    "imagenet": "mlperf_pilot.datasets.imagenet:read_imagenet_layout",
    "coco": "mlperf_pilot.datasets.coco:read_coco_layout",
    "openimages": "mlperf_pilot.datasets.coco:read_coco_layout",  # COCO-format export
})


def read_dataset(card: DatasetCard, root: Path, *, count: int | None = None) -> ImageList:
    """The images (up to ``count``) of the folder ``root``, read in the card's layout."""
    return LAYOUTS.get(card.layout)(card, root, count)


__all__ = ["LAYOUTS", "LayoutReader", "read_dataset"]

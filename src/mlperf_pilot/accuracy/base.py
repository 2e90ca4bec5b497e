"""What every accuracy metric takes and gives: the ground truth, and a scored result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AccuracyResult:
    metric: str  # "top1" | "mAP"
    value: float  # percent
    text: str  # accuracy.txt content, as the reference script prints it
    total: int
    empty: int  # empty responses (failed inferences)


@dataclass(frozen=True)
class GroundTruth:
    """What an accuracy log is scored against: class labels in QSL order
    (classification) or the COCO-format annotation file (detection)."""

    labels: np.ndarray | None = None
    annotations: Path | None = None
    use_inv_map: bool = False  # responses hold 1-based 80-class labels (--use-inv-map)

    @classmethod
    def of(cls, dataset: Any, use_inv_map: bool = False) -> GroundTruth:
        """From a prepared dataset (its labels, or its annotation file)."""
        annotations = getattr(dataset, "annotations", None)
        if annotations is not None:
            return cls(annotations=Path(annotations), use_inv_map=use_inv_map)
        return cls(labels=dataset.labels)


# a metric: (mlperf_log_accuracy.json, ground truth) -> its score
Metric = Callable[[Path, GroundTruth], AccuracyResult]

__all__ = ["AccuracyResult", "GroundTruth", "Metric"]

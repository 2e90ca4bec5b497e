"""Accuracy scripts, one entry point per dataset kind; all read mlperf_log_accuracy.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.accuracy.coco import coco_map
from mlperf_pilot.accuracy.imagenet import top1
from mlperf_pilot.errors import ConfigError


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


def compute_accuracy(metric: str, log_path: Path, truth: GroundTruth) -> AccuracyResult:
    """Score an accuracy log: top-1 against labels, mAP against annotations."""
    if metric == "top1":
        if truth.labels is None:
            raise ConfigError("top-1 accuracy needs the dataset's labels")
        result = top1(log_path, truth.labels)
        return AccuracyResult("top1", result.percent, result.line() + "\n", result.total,
                              result.empty)
    if metric == "mAP":
        if truth.annotations is None:
            raise ConfigError("mAP needs the dataset's annotation file")
        scored = coco_map(log_path, truth.annotations, use_inv_map=truth.use_inv_map)
        return AccuracyResult("mAP", scored.percent, scored.text, scored.images, scored.empty)
    raise ConfigError(f"accuracy metric {metric!r} is not supported by this version")


__all__ = ["AccuracyResult", "GroundTruth", "compute_accuracy"]

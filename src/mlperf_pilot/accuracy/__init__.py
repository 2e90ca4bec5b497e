"""Accuracy scripts, one entry point per dataset kind; all read mlperf_log_accuracy.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_pilot.accuracy.imagenet import top1
from mlperf_pilot.errors import ConfigError


@dataclass(frozen=True)
class AccuracyResult:
    metric: str  # "top1" | "mAP"
    value: float  # percent
    text: str  # accuracy.txt content, as the reference script prints it
    total: int
    empty: int  # empty responses (failed inferences)


def compute_accuracy(metric: str, log_path: Path, labels: np.ndarray) -> AccuracyResult:
    if metric == "top1":
        result = top1(log_path, labels)
        return AccuracyResult("top1", result.percent, result.line() + "\n", result.total,
                              result.empty)
    raise ConfigError(f"accuracy metric {metric!r} is not supported by this version")


__all__ = ["AccuracyResult", "compute_accuracy"]

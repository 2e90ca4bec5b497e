"""Accuracy scripts, one module per metric, registered by the name a card's
``accuracy.metric`` uses; all read mlperf_log_accuracy.json."""

from __future__ import annotations

from pathlib import Path

from mlperf_pilot.accuracy.base import AccuracyResult, GroundTruth, Metric
from mlperf_pilot.registry import Registry

# metric name -> "module:function" (log path, GroundTruth) -> AccuracyResult
METRICS: Registry[Metric] = Registry("accuracy metric", {
    "top1": "mlperf_pilot.accuracy.imagenet:score_top1",
    "mAP": "mlperf_pilot.accuracy.coco:score_map",
})


def compute_accuracy(metric: str, log_path: Path, truth: GroundTruth) -> AccuracyResult:
    """Score an accuracy log: top-1 against labels, mAP against annotations."""
    return METRICS.get(metric)(log_path, truth)


__all__ = ["METRICS", "AccuracyResult", "GroundTruth", "compute_accuracy"]

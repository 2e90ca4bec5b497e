"""Top-1 accuracy from mlperf_log_accuracy.json, as the reference accuracy-imagenet.py.

For each QSL index (first occurrence only) the first element of the response, read as
``dtype`` (float32 by default, what the SUT writes), is the predicted class, compared
with the val_map label at that index. The text line is the reference's, character for
character: ``accuracy=XX.XXX%, good=N, total=M``. An empty response (a failed
inference) counts as wrong and is reported in ``empty``; a NaN or infinite answer
(written by another tool: mlperf-pilot's SUT never answers one) counts as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_pilot.accuracy.base import AccuracyResult, GroundTruth
from mlperf_pilot.accuracy.log import first_per_sample, read_accuracy_log
from mlperf_pilot.errors import AccuracyError, ConfigError

DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64}


@dataclass(frozen=True)
class Top1Result:
    good: int
    total: int
    empty: int  # responses with no data (failed inferences)

    @property
    def percent(self) -> float:
        return 100.0 * self.good / self.total if self.total else 0.0

    def line(self) -> str:
        return f"accuracy={self.percent:.3f}%, good={self.good}, total={self.total}"


def top1(log_path: Path, labels: np.ndarray, dtype: str = "float32") -> Top1Result:
    if dtype not in DTYPES:
        raise AccuracyError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    samples = first_per_sample(read_accuracy_log(log_path))
    good = empty = 0
    for qsl_idx, entry in samples.items():
        if qsl_idx >= len(labels):
            raise AccuracyError(
                f"accuracy log {log_path} has qsl_idx {qsl_idx} but the dataset has "
                f"{len(labels)} images",
                hint="score the log against the val_map.txt of the same run",
            )
        values = np.frombuffer(entry.data, DTYPES[dtype])
        if values.size == 0:
            empty += 1
            continue
        if not np.isfinite(values[0]):  # a NaN/inf answer is no class: wrong
            continue
        if int(values[0]) == int(labels[qsl_idx]):
            good += 1
    return Top1Result(good=good, total=len(samples), empty=empty)


def score_top1(log_path: Path, truth: GroundTruth) -> AccuracyResult:
    """The ``top1`` metric: top-1 against the dataset's labels."""
    if truth.labels is None:
        raise ConfigError("top-1 accuracy needs the dataset's labels")
    result = top1(log_path, truth.labels)
    return AccuracyResult("top1", result.percent, result.line() + "\n", result.total,
                          result.empty)

"""COCO mAP from mlperf_log_accuracy.json, as the reference accuracy-coco.py and
accuracy-openimages.py compute it.

Each response is float32 groups of 7 ``qsl_idx, ymin, xmin, ymax, xmax, score, class``
normalised to the image. Per QSL index (first occurrence only) every group becomes a
COCO detection on ``images[qsl_idx]`` of the annotation file, scaled by that image's
height and width in float32 as the reference does; a response of fewer than 7 floats
is an image without detections (it still counts: its objects are misses). COCOeval
runs on the images seen, and ``mAP`` is its AP@[.50:.95]. ``accuracy.txt`` is what the
reference prints: pycocotools' own output, the summary table and ``mAP=XX.XXX%``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.accuracy.base import AccuracyResult, GroundTruth
from mlperf_pilot.accuracy.log import first_per_sample, read_accuracy_log
from mlperf_pilot.errors import AccuracyError, ConfigError, DatasetError


@dataclass(frozen=True)
class MapResult:
    map: float  # AP@[.50:.95] as a fraction
    stats: list[float]  # COCOeval's 12 summary numbers
    text: str  # everything the reference prints, ending in the mAP line
    images: int  # images scored
    detections: int
    empty: int  # images whose response had no detection
    mismatched: int  # groups whose qsl_idx disagrees with LoadGen's

    @property
    def percent(self) -> float:
        return 100.0 * self.map

    def line(self) -> str:
        return f"mAP={self.percent:.3f}%"


def detections_from_log(
    log_path: Path, images: list[dict[str, Any]], *, inv_map: list[int] | None = None,
) -> tuple[list[dict[str, Any]], set[int], int, int, int]:
    """(COCO detections, image ids seen, empty responses, mismatched groups, groups with
    NaN/inf values, which are dropped)."""
    detections: list[dict[str, Any]] = []
    seen_ids: set[int] = set()
    empty = mismatched = nonfinite = 0
    for qsl_idx, entry in first_per_sample(read_accuracy_log(log_path)).items():
        if qsl_idx >= len(images):
            raise AccuracyError(
                f"accuracy log {log_path} has qsl_idx {qsl_idx} but the annotation file "
                f"lists {len(images)} images",
                hint="score the log against the annotation file of the same run",
            )
        image = images[qsl_idx]
        seen_ids.add(image["id"])
        data = np.frombuffer(entry.data, np.float32)
        if data.size < 7:
            empty += 1
            continue
        groups = data[: data.size // 7 * 7].reshape(-1, 7)
        finite = np.isfinite(groups).all(axis=1)
        if not finite.all():  # NaN boxes or scores are no detections
            nonfinite += int(np.count_nonzero(~finite))
            groups = groups[finite]
        mismatched += int(np.count_nonzero(groups[:, 0].astype(np.int64) != qsl_idx))
        height, width = np.float32(image["height"]), np.float32(image["width"])
        ymin, xmin = groups[:, 1] * height, groups[:, 2] * width
        ymax, xmax = groups[:, 3] * height, groups[:, 4] * width
        labels = groups[:, 6].astype(np.int64)
        for k in range(groups.shape[0]):
            label = int(labels[k])
            if inv_map is not None:
                if not 0 <= label < len(inv_map):
                    raise AccuracyError(
                        f"accuracy log {log_path}: label {label} is outside the "
                        f"{len(inv_map) - 1} categories of the annotation file",
                        hint="this model answers with COCO ids; drop accuracy_inv_map",
                    )
                label = inv_map[label]
            detections.append({
                "image_id": image["id"],
                "category_id": label,
                "bbox": [float(xmin[k]), float(ymin[k]), float(xmax[k] - xmin[k]),
                         float(ymax[k] - ymin[k])],
                "score": float(groups[k, 5]),
            })
    return detections, seen_ids, empty, mismatched, nonfinite


def coco_map(log_path: Path, annotations: Path, *, use_inv_map: bool = False) -> MapResult:
    """mAP of an accuracy log against a COCO-format annotation file."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            ground_truth = COCO(str(annotations))
        except FileNotFoundError:
            raise DatasetError(f"annotation file {annotations} does not exist") from None
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise DatasetError(f"annotation file {annotations} cannot be used: {exc}") from exc
        inv_map = [0, *ground_truth.getCatIds()] if use_inv_map else None
        detections, image_ids, empty, mismatched, nonfinite = detections_from_log(
            log_path, ground_truth.dataset["images"], inv_map=inv_map)
        if nonfinite:
            out.write(f"ERROR: {nonfinite} detection(s) with NaN or infinite values were "
                      "ignored\n")
        if mismatched:
            out.write(f"ERROR: {mismatched} detection(s) whose payload qsl_idx disagrees "
                      "with LoadGen's\n")
        if detections:
            known = set(ground_truth.getCatIds())
            if not any(d["category_id"] in known for d in detections):
                ids = sorted({d["category_id"] for d in detections})
                raise AccuracyError(
                    f"no detection in {log_path} has a category id that {annotations} "
                    f"defines (ids seen: {ids[:5]})",
                    hint="the model's class numbering does not match the dataset "
                    "(check the card's class_map / accuracy_inv_map)",
                )
            results = ground_truth.loadRes(detections)
            evaluator = COCOeval(ground_truth, results, iouType="bbox")
            evaluator.params.imgIds = sorted(image_ids)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            stats = [float(v) for v in evaluator.stats]
        else:
            out.write("no detections in the accuracy log\n")
            stats = [0.0] * 12
    text = out.getvalue() + f"mAP={100.0 * stats[0]:.3f}%\n"
    return MapResult(map=stats[0], stats=stats, text=text, images=len(image_ids),
                     detections=len(detections), empty=empty, mismatched=mismatched)


def score_map(log_path: Path, truth: GroundTruth) -> AccuracyResult:
    """The ``mAP`` metric: COCO mAP against the dataset's annotation file."""
    if truth.annotations is None:
        raise ConfigError("mAP needs the dataset's annotation file")
    scored = coco_map(log_path, truth.annotations, use_inv_map=truth.use_inv_map)
    return AccuracyResult("mAP", scored.percent, scored.text, scored.images, scored.empty)

"""Detection decoders: model outputs → MLPerf's detection response.

Every sample's response is a run of float32 groups of 7 — ``qsl_idx, ymin, xmin, ymax,
xmax, score, class`` — with coordinates normalised to the image, as the reference apps
write them and accuracy-coco.py / accuracy-openimages.py read them. A sample without
detections answers with zero bytes (the accuracy scripts count it as "no results").

Boxes are normalised to the original image: for plain resizes (``stretch``) a box
normalised to the network input already is; for a ``letterbox`` resize the decoder
undoes the padding with each sample's original size (given by the dataset).
"""

from __future__ import annotations

import numpy as np

from mlperf_pilot.decoders.base import (
    Decoder,
    OutputMismatchError,
    ResponseBatch,
    describe,
    letterbox_geometry,
)

# the 80 COCO training classes → COCO 2017 category ids (1..90 with gaps)
COCO80_TO_91 = np.array([
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
], dtype=np.float32)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float,
        limit: int) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes_xyxy.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes_xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                iou_threshold: float, limit: int) -> np.ndarray:
    """NMS within each class at once: boxes of different classes are moved apart."""
    if boxes_xyxy.size == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(boxes_xyxy.max()) + 1.0
    shifted = boxes_xyxy + (classes.astype(np.float32) * span)[:, None]
    return nms(shifted, scores, iou_threshold, limit)


def to_xyxy(boxes: np.ndarray, order: str) -> np.ndarray:
    """(n, 4) boxes in ``order`` (xyxy, yxyx or cxcywh) → x1, y1, x2, y2."""
    if order == "xyxy":
        return boxes
    if order == "yxyx":
        return boxes[:, [1, 0, 3, 2]]
    half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
    return np.stack([boxes[:, 0] - half_w, boxes[:, 1] - half_h, boxes[:, 0] + half_w,
                     boxes[:, 1] + half_h], axis=1)


def _pack(rows: list[np.ndarray]) -> ResponseBatch:
    """One buffer for the batch; sample i's groups of 7 are rows[i]."""
    sizes = [int(r.size) * 4 for r in rows]
    offsets = list(np.cumsum([0, *sizes[:-1]])) if rows else []
    flat = np.concatenate([r.reshape(-1) for r in rows]).astype(np.float32) if rows else \
        np.zeros(0, np.float32)
    if flat.size == 0:
        flat = np.zeros(1, np.float32)  # a valid pointer for empty responses
    return ResponseBatch(buffer=np.ascontiguousarray(flat), offsets=[int(o) for o in offsets],
                         sizes=sizes)


def _groups(index: int, yxyx: np.ndarray, scores: np.ndarray, classes: np.ndarray
            ) -> np.ndarray:
    n = scores.shape[0]
    out = np.empty((n, 7), dtype=np.float32)
    out[:, 0] = index
    out[:, 1:5] = yxyx
    out[:, 5] = scores
    out[:, 6] = classes
    return out


class DetectionDecoder(Decoder):
    """Common parts: input-pixel boxes back to the original image, and class mapping."""

    # (output position, what it must be) checked on the warm-up batch: "boxes" = last
    # axis of 4, "rank3" = (N, x, y)
    checks: tuple[tuple[int, str], ...] = ()

    def check_outputs(self, outputs: list[np.ndarray], batch_size: int) -> None:
        super().check_outputs(outputs, batch_size)
        for position, rule in self.checks:
            output = outputs[position]
            if rule == "boxes" and (output.ndim < 2 or output.shape[-1] != 4):
                wanted = "boxes of 4 numbers on its last axis"
            elif rule == "rank3" and output.ndim != 3:
                wanted = "three axes (batch, ..., ...)"
            else:
                continue
            raise OutputMismatchError(
                f"the model's output {self.spec.outputs[position]} is {describe(output)}, "
                f"but the card's postprocess {self.spec.kind} expects {wanted}")

    def map_classes(self, classes: np.ndarray) -> np.ndarray:
        if self.spec.class_map == "coco80":
            return COCO80_TO_91[np.clip(classes.astype(np.int64), 0, 79)]
        return classes.astype(np.float32)

    def to_image(self, xyxy_input: np.ndarray, qsl_idx: int) -> np.ndarray:
        """Boxes in input pixels (xyxy) → yxyx normalised to the original image."""
        geometry = self.geometry
        if geometry.input_hw is None:
            raise ValueError("this decoder needs the network input size")
        in_h, in_w = geometry.input_hw
        if geometry.letterbox is not None:
            if geometry.image_hw is None:
                raise ValueError("a letterboxed input needs each image's original size")
            height, width = (int(v) for v in geometry.image_hw[qsl_idx])
            ratio, top, left = letterbox_geometry(height, width, geometry.letterbox)
            x1 = (xyxy_input[:, 0] - left) / ratio / width
            x2 = (xyxy_input[:, 2] - left) / ratio / width
            y1 = (xyxy_input[:, 1] - top) / ratio / height
            y2 = (xyxy_input[:, 3] - top) / ratio / height
        else:
            x1, x2 = xyxy_input[:, 0] / in_w, xyxy_input[:, 2] / in_w
            y1, y2 = xyxy_input[:, 1] / in_h, xyxy_input[:, 3] / in_h
        return np.clip(np.stack([y1, x1, y2, x2], axis=1), 0.0, 1.0)


class TfDetectionDecoder(DetectionDecoder):
    """num_detections, boxes (yxyx, normalised), scores, classes (COCO ids)."""

    checks = ((1, "boxes"),)

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        num, boxes, scores, classes = outputs
        rows = []
        for b, index in enumerate(indices):
            n = int(num[b])
            rows.append(_groups(int(index), boxes[b, :n], scores[b, :n],
                                self.map_classes(classes[b, :n])))
        return _pack(rows)


class BoxesLabelsScoresDecoder(DetectionDecoder):
    """boxes (``box_order``; normalised, or pixels of the input), labels, scores sorted by
    score; detections stop at the first score under the threshold, as the reference."""

    checks = ((0, "boxes"),)

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        boxes, labels, scores = outputs
        if boxes.ndim == 2:  # batch-1 models without a batch axis
            boxes, labels, scores = boxes[None], labels[None], scores[None]
        threshold = self.spec.score_threshold or 0.0
        rows = []
        for b, index in enumerate(indices):
            below = np.flatnonzero(scores[b] < threshold)
            n = int(below[0]) if below.size else scores[b].shape[0]
            xyxy = to_xyxy(boxes[b, :n].astype(np.float32), self.spec.box_order)
            if self.spec.boxes_normalized:
                yxyx = xyxy[:, [1, 0, 3, 2]]
            else:
                yxyx = self.to_image(xyxy, int(index))
            rows.append(_groups(int(index), yxyx, scores[b, :n], self.map_classes(labels[b, :n])))
        return _pack(rows)


class ScoredBoxesDecoder(DetectionDecoder):
    """Dense candidates → threshold → per-class NMS → the best ``max_detections``.

    ``yolo``: one output (N, 4 + C, A) with cx, cy, w, h (ultralytics: input pixels);
    ``boxes-scores``: boxes (N, A, 4) cx, cy, w, h and scores (N, A, C). Boxes are in
    input pixels unless ``boxes_normalized`` (relative to the input)."""

    def check_outputs(self, outputs: list[np.ndarray], batch_size: int) -> None:
        self.checks = ((0, "rank3"),) if self.spec.kind == "yolo" else \
            ((0, "boxes"), (0, "rank3"), (1, "rank3"))
        super().check_outputs(outputs, batch_size)

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        if self.spec.kind == "yolo":
            head = outputs[0].transpose(0, 2, 1)  # N, A, 4 + C
            boxes, scores = head[..., :4], head[..., 4:]
        else:
            boxes, scores = outputs
        scale = np.ones(4, np.float32)
        if self.spec.boxes_normalized:  # relative to the input: to input pixels
            if self.geometry.input_hw is None:
                raise ValueError("this decoder needs the network input size")
            in_h, in_w = self.geometry.input_hw
            scale = np.array([in_w, in_h, in_w, in_h], np.float32)
        threshold = self.spec.score_threshold or 0.0
        iou = self.spec.nms_iou_threshold or 0.5
        rows = []
        for b, index in enumerate(indices):
            anchor, cls = np.nonzero(scores[b] > threshold)  # every class above threshold
            conf = scores[b][anchor, cls]
            if conf.size > 30_000:
                top = np.argsort(-conf)[:30_000]
                anchor, cls, conf = anchor[top], cls[top], conf[top]
            xyxy = to_xyxy(boxes[b][anchor] * scale, self.spec.box_order)
            keep = batched_nms(xyxy, conf, cls, iou, self.spec.max_detections)
            rows.append(_groups(int(index), self.to_image(xyxy[keep], int(index)), conf[keep],
                                self.map_classes(cls[keep])))
        return _pack(rows)


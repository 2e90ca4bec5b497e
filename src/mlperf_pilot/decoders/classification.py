"""Classification decoders: the predicted class as one float32 per sample.

The reference answers LoadGen with ``float32(class + offset)``; accuracy-imagenet.py
reads the first float32 of each response (its default --dtype).
"""

from __future__ import annotations

import numpy as np

from mlperf_pilot.decoders.base import Decoder, ResponseBatch


class ArgmaxDecoder(Decoder):
    """``outputs[0]`` holds logits/probabilities (B, classes): argmax + offset."""

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        scores = outputs[0]
        classes = scores.reshape(scores.shape[0], -1).argmax(axis=1)
        return ResponseBatch.fixed((classes + self.spec.offset).astype(np.float32))


class ClassIndexDecoder(Decoder):
    """``outputs[0]`` already holds the class index (B,) or (B, 1): + offset."""

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        raw = outputs[0]
        classes = raw.reshape(raw.shape[0], -1)[:, 0]
        return ResponseBatch.fixed((classes.astype(np.int64) + self.spec.offset).astype(np.float32))

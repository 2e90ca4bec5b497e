"""Classification decoders: the predicted class as one float32 per sample.

The reference answers LoadGen with ``float32(class + offset)``; accuracy-imagenet.py
reads the first float32 of each response (its default --dtype).

Before LoadGen starts, the warm-up checks the model's first output against the kind
(``check_outputs``): ``argmax`` needs several scores per sample, ``class-index`` one
whole number per sample. A model of the other kind would otherwise be decoded silently
wrong (column 0 of the logits read as the class, or the argmax of a single value).
"""

from __future__ import annotations

import numpy as np

from mlperf_pilot.decoders.base import Decoder, OutputMismatchError, ResponseBatch, describe


def _values_per_sample(output: np.ndarray, batch_size: int, kind: str, name: str) -> int:
    if output.ndim == 0 or output.shape[0] != batch_size:
        raise OutputMismatchError(
            f"the model's output {name} is {describe(output)} for a batch of {batch_size}, "
            f"but the card's postprocess {kind} expects one row per sample")
    return int(output.size // batch_size)


class ArgmaxDecoder(Decoder):
    """``outputs[0]`` holds logits/probabilities (B, classes): argmax + offset."""

    def check_outputs(self, outputs: list[np.ndarray], batch_size: int) -> None:
        super().check_outputs(outputs, batch_size)
        name = self.spec.outputs[0]
        if _values_per_sample(outputs[0], batch_size, "argmax", name) == 1:
            raise OutputMismatchError(
                f"the model's output {name} is {describe(outputs[0])}: one value per sample "
                "(a class id), but the card's postprocess argmax expects a score per class",
                fits="class-index")

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        scores = outputs[0]
        classes = scores.reshape(scores.shape[0], -1).argmax(axis=1)
        return ResponseBatch.fixed((classes + self.spec.offset).astype(np.float32))


class ClassIndexDecoder(Decoder):
    """``outputs[0]`` already holds the class index (B,) or (B, 1): + offset."""

    def check_outputs(self, outputs: list[np.ndarray], batch_size: int) -> None:
        super().check_outputs(outputs, batch_size)
        output, name = outputs[0], self.spec.outputs[0]
        values = _values_per_sample(output, batch_size, "class-index", name)
        if values > 1:
            raise OutputMismatchError(
                f"the model's output {name} is {describe(output)}: {values} values per sample "
                "(scores per class), but the card's postprocess class-index expects one class "
                "id per sample", fits="argmax")
        if output.dtype.kind == "f":
            finite = output[np.isfinite(output)]
            fraction = finite[finite != np.round(finite)]
            if fraction.size:
                raise OutputMismatchError(
                    f"the model's output {name} is {describe(output)} holding {fraction[0]:.4g}: "
                    "not a class id, but the card's postprocess class-index expects one "
                    "class id per sample")

    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        raw = outputs[0]
        classes = raw.reshape(raw.shape[0], -1)[:, 0]
        if raw.dtype.kind == "f":  # NaN answers are failures; the SUT drops them
            classes = np.nan_to_num(classes, nan=-1.0, posinf=-1.0, neginf=-1.0)
        return ResponseBatch.fixed((classes.astype(np.int64) + self.spec.offset).astype(np.float32))

"""Output decoding: model outputs of one batch → the bytes LoadGen records per sample.

A decoder returns one contiguous numpy buffer for the whole batch plus each sample's
byte offset and size inside it; the SUT points LoadGen's responses into that buffer
(no per-sample copies) and keeps it alive until QuerySamplesComplete returns.

Decoders import numpy and the catalog's specs only, never an image library: a process
that only decodes (a function handler behind a network SUT) does not load Pillow or
OpenCV.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from mlperf_pilot.catalog.cards import PostprocessSpec, PreprocessSpec, ResizeSpec
from mlperf_pilot.errors import ConfigError


class OutputMismatchError(ConfigError):
    """The model's outputs are not what the card's ``postprocess`` decodes (e.g. logits
    where the card expects class ids). ``fits``: the postprocess kind the outputs look
    like, when one does."""

    def __init__(self, message: str, hint: str | None = None, *, fits: str | None = None
                 ) -> None:
        super().__init__(message, hint)
        self.fits = fits


def describe(array: np.ndarray) -> str:
    """``float32 (1, 1000)``: what an output is, for messages."""
    return f"{array.dtype} {tuple(int(d) for d in array.shape)}"


@dataclass(frozen=True)
class Geometry:
    """What a detection decoder needs to put boxes back on the original image: the
    network input size, each sample's original size, and whether the input was
    letterboxed (padded) rather than stretched."""

    input_hw: tuple[int, int] | None = None
    image_hw: np.ndarray | None = None  # (count, 2) height, width per QSL index
    letterbox: ResizeSpec | None = None  # the letterbox resize, if the input was padded

    @classmethod
    def of(cls, recipe: PreprocessSpec, image_hw: np.ndarray | None) -> Geometry:
        letterbox = recipe.resize if recipe.resize.mode == "letterbox" else None
        return cls(input_hw=recipe.output_hw, image_hw=image_hw, letterbox=letterbox)


def letterbox_geometry(height: int, width: int, spec: ResizeSpec) -> tuple[float, int, int]:
    """(ratio, top, left) of a letterbox resize of a ``height`` x ``width`` image: the
    scale and the padding before it, what a decoder needs to map boxes back. Pure
    arithmetic, the same as the preprocessing's letterbox (``datasets.preprocess``), so
    a decoder needs no image library."""
    size = spec.size
    out_h, out_w = (size, size) if isinstance(size, int) else size
    ratio = min(out_h / height, out_w / width)
    new_h, new_w = round(height * ratio), round(width * ratio)
    return ratio, round((out_h - new_h) / 2 - 0.1), round((out_w - new_w) / 2 - 0.1)


@dataclass(frozen=True)
class ResponseBatch:
    """One batch of responses: sample i is ``buffer`` bytes [offsets[i], +sizes[i])."""

    buffer: np.ndarray  # C-contiguous
    offsets: list[int]
    sizes: list[int]

    @classmethod
    def fixed(cls, buffer: np.ndarray) -> ResponseBatch:
        """Rows of equal size: row i of a (B, ...) array is sample i."""
        buffer = np.ascontiguousarray(buffer)
        n = buffer.shape[0]
        row = buffer.nbytes // n if n else 0
        return cls(buffer=buffer, offsets=list(range(0, n * row, row)), sizes=[row] * n)

    def sample_bytes(self, i: int) -> bytes:
        raw = self.buffer.view(np.uint8).reshape(-1)
        return raw[self.offsets[i] : self.offsets[i] + self.sizes[i]].tobytes()


class Decoder(abc.ABC):
    def __init__(self, spec: PostprocessSpec, geometry: Geometry | None = None) -> None:
        self.spec = spec
        self.geometry = geometry or Geometry()

    def check_outputs(self, outputs: list[np.ndarray], batch_size: int) -> None:
        """Raise OutputMismatchError when ``outputs`` (of a batch of ``batch_size``) are
        not what this decoder reads; run once on the warm-up batch, before LoadGen."""
        if len(outputs) != len(self.spec.outputs):
            raise OutputMismatchError(
                f"the model returned {len(outputs)} output(s) but the card's postprocess "
                f"{self.spec.kind} reads {len(self.spec.outputs)} ({', '.join(self.spec.outputs)})")

    def nan_samples(self, outputs: list[np.ndarray], batch_size: int) -> np.ndarray | None:
        """Positions in the batch whose outputs hold NaN (those samples are failures, not
        answers), or None when there are none. A float output whose first axis is not
        the batch (a batch-1 model without a batch axis) counts for every sample."""
        bad: np.ndarray | None = None
        for output in outputs:
            if output.dtype.kind != "f" or not np.isnan(output).any():
                continue
            if output.ndim and output.shape[0] == batch_size:
                rows = np.isnan(output.reshape(batch_size, -1)).any(axis=1)
            else:
                rows = np.ones(batch_size, dtype=bool)
            bad = rows if bad is None else bad | rows
        return None if bad is None else np.flatnonzero(bad)

    @abc.abstractmethod
    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        """``outputs`` as the backend returned them (in ``spec.outputs`` order);
        ``indices`` are the batch's QSL indices."""

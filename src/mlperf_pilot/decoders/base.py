"""Output decoding: model outputs of one batch → the bytes LoadGen records per sample.

A decoder returns one contiguous numpy buffer for the whole batch plus each sample's
byte offset and size inside it; the SUT points LoadGen's responses into that buffer
(no per-sample copies) and keeps it alive until QuerySamplesComplete returns.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from mlperf_pilot.catalog.cards import PostprocessSpec, PreprocessSpec, ResizeSpec


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

    @abc.abstractmethod
    def decode(self, outputs: list[np.ndarray], indices: np.ndarray) -> ResponseBatch:
        """``outputs`` as the backend returned them (in ``spec.outputs`` order);
        ``indices`` are the batch's QSL indices."""

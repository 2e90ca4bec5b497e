"""Decoders from model outputs to MLPerf response bytes, keyed by the card's kind."""

from __future__ import annotations

from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.decoders.base import Decoder, Geometry, ResponseBatch
from mlperf_pilot.decoders.classification import ArgmaxDecoder, ClassIndexDecoder
from mlperf_pilot.decoders.detection import (
    BoxesLabelsScoresDecoder,
    ScoredBoxesDecoder,
    TfDetectionDecoder,
)
from mlperf_pilot.errors import ConfigError

_DECODERS: dict[str, type[Decoder]] = {
    "argmax": ArgmaxDecoder,
    "class-index": ClassIndexDecoder,
    "tf-detection": TfDetectionDecoder,
    "boxes-labels-scores": BoxesLabelsScoresDecoder,
    "yolo": ScoredBoxesDecoder,
    "boxes-scores": ScoredBoxesDecoder,
}


def create_decoder(spec: PostprocessSpec, geometry: Geometry | None = None) -> Decoder:
    """The decoder for a card's ``postprocess``; detection decoders need ``geometry``
    (network input size, original image sizes) to put boxes back on the image."""
    try:
        cls = _DECODERS[spec.kind]
    except KeyError:
        raise ConfigError(
            f"output decoding {spec.kind!r} is not supported by this version",
            hint=f"supported: {', '.join(sorted(_DECODERS))}",
        ) from None
    return cls(spec, geometry)


__all__ = ["Decoder", "Geometry", "ResponseBatch", "create_decoder"]

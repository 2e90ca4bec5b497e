"""Decoders from model outputs to MLPerf response bytes, keyed by the card's kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.decoders.base import Decoder, Geometry, OutputMismatchError, ResponseBatch
from mlperf_pilot.decoders.classification import ArgmaxDecoder, ClassIndexDecoder
from mlperf_pilot.decoders.detection import (
    BoxesLabelsScoresDecoder,
    ScoredBoxesDecoder,
    TfDetectionDecoder,
)
from mlperf_pilot.errors import ConfigError

if TYPE_CHECKING:
    from mlperf_pilot.catalog.cards import ModelCard, ModelFormat

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


def output_fix(error: OutputMismatchError, card: ModelCard, fmt: ModelFormat) -> str:
    """The fix for a model whose outputs do not match ``fmt``'s postprocess: another
    format of the card that decodes them, else the file the card names or the cards
    whose postprocess would read this file."""
    from mlperf_pilot.catalog import load_catalog

    if error.fits:
        for other in card.formats:
            if other.postprocess.kind == error.fits and other.format == fmt.format:
                return f"use --model-format {other.id} (its postprocess is {error.fits})"
    what = {"argmax": "scores per class", "class-index": "class ids"}.get(
        fmt.postprocess.kind, f"what {fmt.postprocess.kind} reads")
    named = f"{card.name}'s {fmt.id} model answers {what} in " \
        f"{', '.join(fmt.postprocess.outputs)}"
    if not error.fits:
        return f"pass the model file the card names ({named}; see mlperf-pilot list models)"
    cards = sorted(c.name for c in load_catalog().models if c.task == card.task and any(
        f.postprocess.kind == error.fits and f.format == fmt.format for f in c.formats))
    also = f", or run it as a model card whose postprocess is {error.fits}" + (
        f" ({', '.join(cards)})" if cards else "")
    return f"this file is not the card's model: pass the file the card names ({named}){also}"


__all__ = ["Decoder", "Geometry", "OutputMismatchError", "ResponseBatch", "create_decoder",
           "output_fix"]

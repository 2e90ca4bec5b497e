"""Decoders from model outputs to MLPerf response bytes, keyed by the card's kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf_pilot.decoders.base import Decoder, Geometry, OutputMismatchError, ResponseBatch
from mlperf_pilot.registry import Registry

if TYPE_CHECKING:
    from mlperf_pilot.catalog.cards import ModelCard, ModelFormat, PostprocessSpec

_CLASSIFICATION = "mlperf_pilot.decoders.classification"
_DETECTION = "mlperf_pilot.decoders.detection"

# the card's postprocess.kind -> "module:DecoderClass" (imported when a card uses it)
DECODERS: Registry[type[Decoder]] = Registry("output decoder", {
    "argmax": f"{_CLASSIFICATION}:ArgmaxDecoder",
    "class-index": f"{_CLASSIFICATION}:ClassIndexDecoder",
    "tf-detection": f"{_DETECTION}:TfDetectionDecoder",
    "boxes-labels-scores": f"{_DETECTION}:BoxesLabelsScoresDecoder",
    "yolo": f"{_DETECTION}:ScoredBoxesDecoder",
    "boxes-scores": f"{_DETECTION}:ScoredBoxesDecoder",
})


def create_decoder(spec: PostprocessSpec, geometry: Geometry | None = None) -> Decoder:
    """The decoder for a card's ``postprocess``; detection decoders need ``geometry``
    (network input size, original image sizes) to put boxes back on the image."""
    return DECODERS.get(spec.kind)(spec, geometry)


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


__all__ = ["DECODERS", "Decoder", "Geometry", "OutputMismatchError", "ResponseBatch",
           "create_decoder", "output_fix"]

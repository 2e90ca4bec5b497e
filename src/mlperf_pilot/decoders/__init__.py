"""Decoders from model outputs to MLPerf response bytes, keyed by the card's kind."""

from __future__ import annotations

from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.decoders.base import Decoder, ResponseBatch
from mlperf_pilot.decoders.classification import ArgmaxDecoder, ClassIndexDecoder
from mlperf_pilot.errors import ConfigError

_DECODERS: dict[str, type[Decoder]] = {
    "argmax": ArgmaxDecoder,
    "class-index": ClassIndexDecoder,
}


def create_decoder(spec: PostprocessSpec) -> Decoder:
    try:
        return _DECODERS[spec.kind](spec)
    except KeyError:
        raise ConfigError(
            f"output decoding {spec.kind!r} is not supported by this version",
            hint=f"supported: {', '.join(sorted(_DECODERS))}",
        ) from None


__all__ = ["Decoder", "ResponseBatch", "create_decoder"]

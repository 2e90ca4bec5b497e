"""The oip SUT: the batcher (``sut.base.BatchingSut``) over a model server that speaks
the Open Inference Protocol v2, reached with one pooled client
(:class:`~mlperf_pilot.oip.client.OipClient`).

Queued samples are batched on this side exactly as the local SUT batches them (one
request per batch, ``[N, ...]`` tensors); ``concurrency`` worker threads each send one
batch and wait for its answer, on the client's kept-alive connections. The outputs are
decoded by the card's decoder as a local backend's would be, so accuracy mode gives the
same accuracy.txt. A failed request (a timeout, a dropped connection, a non-2xx answer)
fails exactly its samples through the responder: counted, the run INVALID with the
reason, never a made-up output; ``on_error=stop`` answers the rest empty without sending
them, as the local SUT does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_pilot.errors import SutError
from mlperf_pilot.sut.base import BatchingSut, Completion, SutDescription

if TYPE_CHECKING:
    from mlperf_pilot.config.sut import OipSutConfig
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.oip.client import OipClient


class OipPredictor:
    """A remote model as a ``Predictor``: one batch in, one request, the card's outputs
    (in the decoder's order) out. Thread-safe: the pooled client carries several
    requests at once."""

    thread_safe = True

    def __init__(self, client: OipClient, *, model: str, input_name: str,
                 input_dtype: np.dtype[Any], outputs: Sequence[str],
                 fixed_batch_size: int | None = None) -> None:
        self.client = client
        self.model = model
        self.input_name = input_name
        self.dtype = np.dtype(input_dtype)
        self.outputs = tuple(outputs)
        self.fixed_batch_size = fixed_batch_size

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        if batch.dtype != self.dtype:  # the card's input type, as a backend would cast
            batch = batch.astype(self.dtype)
        outputs = self.client.infer([(self.input_name, batch)], self.outputs, model=self.model)
        for name, output in zip(self.outputs, outputs, strict=True):
            if output.ndim == 0 or output.shape[0] != len(batch):
                rows = "a scalar" if output.ndim == 0 else f"{output.shape[0]} row(s)"
                raise SutError(f"the server answered output {name!r} with {rows} for a batch "
                               f"of {len(batch)}", hint="the server's model must answer one "
                               "row per sample of a [N, ...] request")
        return outputs

    def close(self) -> None:
        self.client.close()


class OipSut(BatchingSut):
    """Batching SUT for LoadGen's ConstructFastSUT over a remote OIP model server."""

    kind = "oip"

    def __init__(self, predictor: OipPredictor, store: SampleStore, decoder: Decoder,
                 config: OipSutConfig, *, server: dict[str, Any] | None = None,
                 platform: str | None = None, completion: Completion | None = None) -> None:
        super().__init__(predictor, store, decoder, config, completion=completion)
        self.server = server or {}
        self.platform = platform

    def describe(self) -> SutDescription:
        config = self.config
        details = self.batcher_details()
        details.update({
            "endpoint": str(getattr(config, "endpoint", "")),
            "remote_model": str(getattr(self.predictor, "model", "")),
            "protocol": str(getattr(config, "protocol", "")),
            "http2": int(bool(getattr(config, "http2", False))),
            "concurrency": self.workers,
            "request_timeout_ms": int(getattr(config, "request_timeout_ms", 0)),
        })
        if self.platform:
            details["platform"] = self.platform
        extensions = self.server.get("extensions")
        if isinstance(extensions, list) and extensions:
            details["server_extensions"] = ",".join(str(e) for e in extensions)
        return SutDescription(
            kind=self.kind, name=server_name(self.server),
            version=server_version(self.server),
            device_in_use=remote_device(str(getattr(config, "endpoint", ""))),
            details=details)


def server_name(metadata: dict[str, Any]) -> str:
    return str(metadata.get("name") or "oip-server")


def server_version(metadata: dict[str, Any]) -> str | None:
    version = metadata.get("version")
    return None if version is None else str(version)


def remote_device(endpoint: str) -> str:
    return f"remote ({endpoint})"


__all__ = ["OipPredictor", "OipSut", "remote_device", "server_name", "server_version"]

"""The local SUT: the batcher (``sut.base.BatchingSut``) over a backend loaded in this
process.

:class:`BackendPredictor` adapts a :class:`~mlperf_pilot.backends.base.Backend` to the
``Predictor`` protocol without a call of its own in between: its ``predict`` *is* the
backend's bound ``predict``. Batching, answering and the failure accounting are the
base's (see ``mlperf_pilot.sut.base``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mlperf_pilot.sut.base import NAN_ERROR, BatchingSut, Completion, SutDescription, SutStats

if TYPE_CHECKING:
    from mlperf_pilot.backends.base import Backend
    from mlperf_pilot.config import SutConfig
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder


class BackendPredictor:
    """A loaded backend as a ``Predictor``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.predict: Callable[[np.ndarray], list[np.ndarray]] = backend.predict

    @property
    def thread_safe(self) -> bool:
        return bool(getattr(self.backend, "thread_safe", True))

    @property
    def fixed_batch_size(self) -> int | None:
        return self.backend.fixed_batch_size  # known once the model is loaded

    def close(self) -> None:
        self.backend.close()


class LocalSut(BatchingSut):
    """Batching SUT for LoadGen's ConstructFastSUT over an in-process backend."""

    kind = "local"

    def __init__(
        self,
        backend: Backend,
        store: SampleStore,
        decoder: Decoder,
        config: SutConfig,
        *,
        completion: Completion | None = None,
    ) -> None:
        self.backend = backend
        super().__init__(BackendPredictor(backend), store, decoder, config,
                         completion=completion)

    def describe(self) -> SutDescription:
        backend = self.backend
        return SutDescription(kind=self.kind, name=backend.name, version=backend.version(),
                              device_in_use=backend.device_in_use,
                              details=self.batcher_details())


__all__ = ["NAN_ERROR", "BackendPredictor", "LocalSut", "SutStats"]

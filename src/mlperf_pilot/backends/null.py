"""The null backend: answers every batch at once with zeros, without reading it.

It measures the harness itself (LoadGen + QSL + SUT + response path): whatever rate
the tool reaches with it is the ceiling no real backend can exceed. Each output is a
float32 (batch, 1) array of zeros, so classification decoders answer class ``offset``.
"""

from __future__ import annotations

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions
from mlperf_pilot.config import Device


class NullBackend(Backend):
    name = "null"
    formats = ("onnx", "tensorflow", "pytorch", "tflite", "openvino", "caffe", "darknet", "ncnn",
               "none")
    devices = (Device.CPU,)
    package = None
    import_name = None
    needs_model = False  # zeros of any card's shape, without a file

    def __init__(self) -> None:
        self._outputs = 1
        self._zeros = np.zeros((0, 1), dtype=np.float32)

    def load(self, options: LoadOptions) -> None:
        self._outputs = max(1, len(options.outputs))

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        n = batch.shape[0]
        if self._zeros.shape[0] < n:
            self._zeros = np.zeros((n, 1), dtype=np.float32)
        view = self._zeros[:n]
        return [view] * self._outputs

    @property
    def device_in_use(self) -> str:
        return "none (null backend)"

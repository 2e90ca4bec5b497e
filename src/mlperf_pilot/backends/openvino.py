"""OpenVINO: IR (.xml + .bin) and ONNX files on the CPU plugin.

The model is compiled with a performance hint — ``LATENCY`` by default (one stream,
the SUT's threads), or what the card's ``options.performance_hint`` says —,
``INFERENCE_NUM_THREADS`` set to the SUT's share of the cores, and f32 precision
(``options.inference_precision`` may ask for bf16). Each SUT worker thread
gets its own infer request, so several workers may run at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line, select_outputs
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError


class OpenVinoBackend(Backend):
    name = "openvino"
    formats = ("openvino", "onnx")
    devices = (Device.CPU,)
    package = "openvino"
    import_name = "openvino"
    extra = "openvino"

    def __init__(self) -> None:
        self._compiled: Any = None
        self._local = threading.local()
        self._ports: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._device = ""

    @classmethod
    def available_devices(cls) -> list[Device]:
        import openvino as ov

        return [Device.CPU] if "CPU" in ov.Core().available_devices else []

    def load(self, options: LoadOptions) -> None:
        import openvino as ov

        path = Path(options.model_path)
        if not path.is_file():
            raise BackendError(f"OpenVINO model {path} does not exist")
        core = ov.Core()
        hint = str(options.extra.get("performance_hint", "LATENCY")).upper()
        # f32 unless the card asks otherwise: on CPUs with bf16/AMX the plugin would
        # otherwise compute in bf16 and change the accuracy
        precision = str(options.extra.get("inference_precision", "f32"))
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": max(1, options.threads),
                  "INFERENCE_PRECISION_HINT": precision}
        try:
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError and its own types
            raise BackendError(f"OpenVINO cannot load {path}: {first_line(exc)}",
                               hint="pass an IR .xml (with its .bin beside it) or an ONNX "
                               "file") from exc
        self._ports = {}
        for port in self._compiled.outputs:
            for name in port.get_names():
                self._ports[name] = port
        self._outputs = list(options.outputs)
        self._device = self._compiled.get_property("EXECUTION_DEVICES")

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        results = request.infer({0: batch})
        named = {name: results[port] for name, port in self._ports.items()}
        return select_outputs(named, self._outputs, "the OpenVINO model")

    @property
    def device_in_use(self) -> str:
        if self._compiled is None:
            return "(not loaded)"
        return f"OpenVINO {','.join(self._device)}"

    def close(self) -> None:
        self._compiled = None
        self._local = threading.local()

"""TFLite (LiteRT): ``.tflite`` files on the CPU, with the interpreter's own threads.

The interpreter comes from ``ai-edge-litert`` (the ``tflite`` extra) or, without it,
from TensorFlow. Files with a signature are called through it (named inputs and
outputs); older files by tensor index. A batch of a new size resizes the input once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line, select_outputs
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError, MissingDependencyError


def make_interpreter(path: Path, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from mlperf_pilot.backends.tensorflow import import_tensorflow

            Interpreter = import_tensorflow().lite.Interpreter
        except ImportError:
            raise MissingDependencyError("ai-edge-litert", extra="tflite",
                                         purpose="the tflite backend") from None
    try:
        return Interpreter(model_path=str(path), num_threads=max(1, threads))
    except Exception as exc:  # ValueError for a bad file, RuntimeError for bad ops
        raise BackendError(f"the TFLite interpreter cannot load {path}: {first_line(exc)}",
                           hint="check that the file is a complete .tflite model") from exc


class TfliteBackend(Backend):
    name = "tflite"
    formats = ("tflite",)
    devices = (Device.CPU,)
    package = "ai-edge-litert"
    import_name = "ai_edge_litert"
    extra = "tflite"
    alternatives = ("tensorflow", "tensorflow-cpu")
    thread_safe = False  # one interpreter, one call at a time

    def __init__(self) -> None:
        self._interpreter: Any = None
        self._runner: Any = None
        self._input_key = ""
        self._input_index = 0
        self._output_names: dict[str, int] = {}
        self._outputs: list[str] = []
        self._shape: tuple[int, ...] = ()

    @classmethod
    def is_installed(cls) -> bool:
        import importlib.util

        return any(importlib.util.find_spec(m) is not None
                   for m in ("ai_edge_litert", "tensorflow"))

    def load(self, options: LoadOptions) -> None:
        path = Path(options.model_path)
        if not path.is_file():
            raise BackendError(f"TFLite model {path} does not exist")
        interpreter = make_interpreter(path, options.threads)
        self._outputs = list(options.outputs)
        signatures = interpreter.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            self._runner = interpreter.get_signature_runner(key)
            names = list(signatures[key]["inputs"])
            wanted = options.inputs[0].name.split(":")[0]
            self._input_key = wanted if wanted in names else names[0]
        else:
            interpreter.allocate_tensors()
            self._input_index = interpreter.get_input_details()[0]["index"]
            self._output_names = {d["name"]: d["index"]
                                  for d in interpreter.get_output_details()}
        self._interpreter = interpreter

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._runner is not None:
            named = self._runner(**{self._input_key: batch})
            return select_outputs(named, self._outputs, "the TFLite model")
        interpreter = self._interpreter
        if batch.shape != self._shape:
            interpreter.resize_tensor_input(self._input_index, list(batch.shape))
            interpreter.allocate_tensors()
            self._shape = batch.shape
        interpreter.set_tensor(self._input_index, batch)
        interpreter.invoke()
        named = {name: interpreter.get_tensor(index)
                 for name, index in self._output_names.items()}
        return select_outputs(named, self._outputs, "the TFLite model")

    @property
    def device_in_use(self) -> str:
        return "cpu (TFLite interpreter)" if self._interpreter is not None else "(not loaded)"

    def close(self) -> None:
        self._runner = None
        self._interpreter = None

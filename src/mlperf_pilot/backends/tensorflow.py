"""TensorFlow: SavedModel folders (their ``serving_default`` signature) and frozen
graphs (.pb, TF1 style, tensor names such as ``input_tensor:0``); CPU and CUDA.

Threads are set before TensorFlow starts its runtime (intra-op = the SUT's share of the
cores, inter-op 1); a CPU run hides any GPU so nothing lands there by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line, select_outputs
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError, DeviceUnavailableError


def import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter
    import tensorflow as tf

    return tf


class TensorFlowBackend(Backend):
    name = "tensorflow"
    formats = ("tensorflow",)
    devices = (Device.CPU, Device.CUDA)
    package = "tensorflow"
    import_name = "tensorflow"
    extra = "tensorflow"
    alternatives = ("tensorflow-cpu",)

    def __init__(self) -> None:
        self._tf: Any = None
        self._call: Any = None
        self._outputs: list[str] = []
        self._device = ""
        self._kind = ""
        self._checked = False

    @classmethod
    def available_devices(cls) -> list[Device]:
        tf = import_tensorflow()
        return [Device.CPU, *([Device.CUDA] if tf.config.list_physical_devices("GPU") else [])]

    def load(self, options: LoadOptions) -> None:
        tf = self._tf = import_tensorflow()
        try:  # only possible before the runtime starts (the first op)
            tf.config.threading.set_intra_op_parallelism_threads(max(1, options.threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
            if options.device is Device.CPU:
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
        if options.device is Device.CUDA and not tf.config.list_logical_devices("GPU"):
            raise DeviceUnavailableError(
                f"--device cuda was asked but tensorflow {tf.__version__} sees no GPU",
                hint="install tensorflow[and-cuda] on a machine with a GPU, or use "
                "--device cpu",
            )
        self._device = "/GPU:0" if options.device is Device.CUDA else "/CPU:0"
        path = Path(options.model_path)
        with tf.device(self._device):
            if path.is_dir():
                self._call = self._saved_model(tf, path, options)
                self._kind = "SavedModel"
            elif path.is_file():
                self._call = self._frozen_graph(tf, path, options)
                self._kind = "frozen graph"
            else:
                raise BackendError(f"TensorFlow model {path} does not exist")
        self._outputs = list(options.outputs)

    @staticmethod
    def _saved_model(tf: Any, path: Path, options: LoadOptions) -> Any:
        try:
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures["serving_default"]
        except KeyError:
            raise BackendError(f"SavedModel {path} has no serving_default signature",
                               hint="save it with a serving signature") from None
        except Exception as exc:  # TF raises many types
            raise BackendError(f"tensorflow cannot load {path}: {first_line(exc)}",
                               hint="pass the SavedModel folder (with saved_model.pb)") from exc
        names = list(signature.structured_input_signature[1])
        wanted = options.inputs[0].name.split(":")[0]
        if wanted not in names:
            if len(names) != 1:
                raise BackendError(f"the SavedModel has no input {wanted!r} (it has {names})",
                                   hint="this model does not match the card")
            wanted = names[0]

        def call(batch: np.ndarray) -> dict[str, Any]:
            return signature(**{wanted: tf.constant(batch)})  # type: ignore[no-any-return]

        call.keep = loaded  # type: ignore[attr-defined] # the signature needs its object
        return call

    @staticmethod
    def _frozen_graph(tf: Any, path: Path, options: LoadOptions) -> Any:
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
            wrapped = tf.compat.v1.wrap_function(
                lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
            tensor = _tensor_name(options.inputs[0].name)
            fetches = [_tensor_name(o) for o in options.outputs]
            pruned = wrapped.prune(feeds=wrapped.graph.get_tensor_by_name(tensor),
                                   fetches=[wrapped.graph.get_tensor_by_name(f) for f in fetches])
        except Exception as exc:  # DecodeError, KeyError for a missing tensor, ...
            raise BackendError(f"tensorflow cannot use the frozen graph {path}: "
                               f"{first_line(exc)}",
                               hint="check the file and the card's tensor names") from exc

        def call(batch: np.ndarray) -> dict[str, Any]:
            return dict(zip(options.outputs, pruned(tf.constant(batch)), strict=True))

        return call

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._tf.device(self._device):
            out = self._call(batch)
        if not self._checked:
            self._check_device(next(iter(out.values())))
        return select_outputs({k: v.numpy() for k, v in out.items()}, self._outputs,
                              "the TensorFlow model")

    def _check_device(self, tensor: Any) -> None:
        placed = str(getattr(tensor, "device", ""))
        if self._device == "/GPU:0" and "GPU" not in placed.upper():
            raise DeviceUnavailableError(f"--device cuda was asked but TensorFlow ran the "
                                         f"model on {placed or 'an unknown device'}")
        self._checked = True

    @property
    def device_in_use(self) -> str:
        return f"{self._device}, {self._kind}" if self._call is not None else "(not loaded)"

    def close(self) -> None:
        self._call = None


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"

"""Backend plugins, keyed by name; a backend's module is imported only when chosen."""

from __future__ import annotations

import importlib

from mlperf_pilot.backends.base import Backend, LoadOptions
from mlperf_pilot.errors import MissingDependencyError, UnknownPluginError

# name -> "module:Class"; modules import their framework lazily, in load()
_REGISTRY: dict[str, str] = {
    "onnxruntime": "mlperf_pilot.backends.onnxruntime:OnnxRuntimeBackend",
    "pytorch": "mlperf_pilot.backends.pytorch:PyTorchBackend",
    "tensorflow": "mlperf_pilot.backends.tensorflow:TensorFlowBackend",
    "tflite": "mlperf_pilot.backends.tflite:TfliteBackend",
    "openvino": "mlperf_pilot.backends.openvino:OpenVinoBackend",
    "opencv": "mlperf_pilot.backends.opencv:OpenCvBackend",
    "null": "mlperf_pilot.backends.null:NullBackend",
}


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UnknownPluginError("backend", name, _REGISTRY) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_backend(name: str) -> Backend:
    cls = backend_class(name)
    if not cls.is_installed():
        raise MissingDependencyError(
            cls.package or name, extra=cls.extra, purpose=f"the {name} backend"
        )
    return cls()


__all__ = ["Backend", "LoadOptions", "backend_class", "backend_names", "create_backend"]

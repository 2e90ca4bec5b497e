"""Backend plugins, keyed by name; a backend's module is imported only when chosen.

Built-in backends are listed here; other installed packages add theirs through the
entry-point group ``mlperf_pilot.backends`` (``name = "module:BackendClass"``).
"""

from __future__ import annotations

from mlperf_pilot.backends.base import Backend, LoadOptions
from mlperf_pilot.errors import ConfigError, MissingDependencyError
from mlperf_pilot.registry import Registry

# name -> "module:Class"; modules import their framework lazily, in load()
BACKENDS: Registry[type[Backend]] = Registry("backend", {
    "onnxruntime": "mlperf_pilot.backends.onnxruntime:OnnxRuntimeBackend",
    "pytorch": "mlperf_pilot.backends.pytorch:PyTorchBackend",
    "tensorflow": "mlperf_pilot.backends.tensorflow:TensorFlowBackend",
    "tflite": "mlperf_pilot.backends.tflite:TfliteBackend",
    "openvino": "mlperf_pilot.backends.openvino:OpenVinoBackend",
    "opencv": "mlperf_pilot.backends.opencv:OpenCvBackend",
    "null": "mlperf_pilot.backends.null:NullBackend",
}, group="mlperf_pilot.backends")


def backend_names() -> list[str]:
    return BACKENDS.names()


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (imported now); an entry point that
    names something other than a Backend subclass is refused."""
    cls = BACKENDS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        origin = BACKENDS.origin(name)
        raise ConfigError(
            f"the backend {name!r} ({origin}) is {cls!r}, not a subclass of "
            "mlperf_pilot.backends.Backend",
            hint="fix the entry point of the package that provides it, or uninstall it",
        )
    return cls


def create_backend(name: str) -> Backend:
    cls = backend_class(name)
    if not cls.is_installed():
        raise MissingDependencyError(
            cls.package or name, extra=cls.extra, purpose=f"the {name} backend"
        )
    return cls()


__all__ = ["BACKENDS", "Backend", "LoadOptions", "backend_class", "backend_names",
           "create_backend"]

"""The engines a function runs, as small as they can be: load a model file once, then
``run(batch)`` → ``{output name: array}`` in the model's order.

They do what the tool's own backends (``mlperf_pilot.backends``) do with the same file
(same session and compile settings), without their checks and without pydantic; the
tests compare their outputs with those backends' on the same input. Each engine's
library is imported only when that engine is chosen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("onnxruntime", "openvino", "opencv", "null")
# the second file a model needs, found beside the first (as the OpenCV backend does)
_COMPANIONS = {".prototxt": ".caffemodel", ".cfg": ".weights", ".xml": ".bin"}


class EngineError(RuntimeError):
    """The model cannot be loaded or run (one line)."""


def companion_files(path: Path) -> list[Path]:
    """The files beside ``path`` that its format needs (an IR's .bin, a .caffemodel)."""
    suffix = path.suffix.lower()
    return [path.with_suffix(_COMPANIONS[suffix])] if suffix in _COMPANIONS else []


def load_engine(name: str, model_path: Path | None, *, threads: int, input_layout: str = "NCHW",
                options: dict[str, Any] | None = None) -> Any:
    """The engine ``name`` with the model at ``model_path`` loaded."""
    options = options or {}
    threads = max(1, int(threads))
    if name == "null":
        return NullEngine()
    if model_path is None or not Path(model_path).is_file():
        raise EngineError(f"model file {model_path} does not exist")
    for needed in companion_files(Path(model_path)):
        if not needed.is_file():
            raise EngineError(f"{Path(model_path).name} needs {needed.name} beside it")
    if name == "onnxruntime":
        return OnnxRuntimeEngine(Path(model_path), threads)
    if name == "openvino":
        return OpenVinoEngine(Path(model_path), threads, options)
    if name == "opencv":
        return OpenCvEngine(Path(model_path), threads, input_layout)
    raise EngineError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")


def select(named: dict[str, np.ndarray], wanted: list[str]) -> list[tuple[str, np.ndarray]]:
    """The outputs the request names, in its order (all, in the model's order, when it
    names none). A model with one output may call it anything (exporters rename them)."""
    if not wanted:
        return list(named.items())
    if all(name in named for name in wanted):
        return [(name, named[name]) for name in wanted]
    if len(wanted) == 1 and len(named) == 1:
        return [(wanted[0], next(iter(named.values())))]
    missing = next(name for name in wanted if name not in named)
    raise EngineError(f"the model has no output named {missing!r} (it has {sorted(named)})")


class NullEngine:
    """Zeros of shape (batch, 1) for every output asked for, without a model: the
    storage path alone (the null backend's answer)."""

    version = "null"

    def run(self, batch: np.ndarray, wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        zeros = np.zeros((batch.shape[0], 1), dtype=np.float32)
        return {name: zeros for name in (wanted or ["output"])}


class OnnxRuntimeEngine:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), so,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types
            raise EngineError(f"onnxruntime cannot load {path.name}: {_line(exc)}") from exc
        self._input = self._session.get_inputs()[0].name
        self._names = [o.name for o in self._session.get_outputs()]
        self.version = f"onnxruntime {ort.__version__}"

    def run(self, batch: np.ndarray, wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        values = self._session.run(self._names, {self._input: batch})
        return dict(zip(self._names, values, strict=True))


class OpenVinoEngine:
    def __init__(self, path: Path, threads: int, options: dict[str, Any]) -> None:
        import openvino as ov

        core = ov.Core()
        # f32 unless asked otherwise, as the tool's backend: bf16 would change the accuracy
        config = {"PERFORMANCE_HINT": str(options.get("performance_hint", "LATENCY")).upper(),
                  "INFERENCE_NUM_THREADS": threads,
                  "INFERENCE_PRECISION_HINT": str(options.get("inference_precision", "f32"))}
        try:
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError and its own types
            raise EngineError(f"OpenVINO cannot load {path.name}: {_line(exc)}") from exc
        self._request = compiled.create_infer_request()
        self._ports = [(port.get_any_name(), port) for port in compiled.outputs]
        self._aliases = {name: port for port in compiled.outputs for name in port.get_names()}
        self.version = f"openvino {ov.__version__}"

    def run(self, batch: np.ndarray, wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        results = self._request.infer({0: batch})
        named = {name: results[port] for name, port in self._ports}
        for name in wanted or []:  # an output known by another of its names
            if name not in named and name in self._aliases:
                named[name] = results[self._aliases[name]]
        return named


class OpenCvEngine:
    def __init__(self, path: Path, threads: int, input_layout: str) -> None:
        import cv2

        cv2.setNumThreads(threads)
        suffix = path.suffix.lower()
        try:
            if suffix == ".prototxt":
                net = cv2.dnn.readNetFromCaffe(str(path), str(path.with_suffix(".caffemodel")))
            elif suffix == ".cfg":
                net = cv2.dnn.readNetFromDarknet(str(path), str(path.with_suffix(".weights")))
            elif suffix == ".pb":
                config = path.with_suffix(".pbtxt")
                net = cv2.dnn.readNetFromTensorflow(
                    str(path), *([str(config)] if config.is_file() else []))
            elif suffix == ".onnx":
                net = cv2.dnn.readNetFromONNX(str(path))
            else:
                raise EngineError(f"OpenCV DNN does not read {path.name} (use .onnx, "
                                  ".prototxt + .caffemodel, .pb or .cfg + .weights)")
        except cv2.error as exc:
            raise EngineError(f"OpenCV cannot read {path.name}: {_line(exc)}") from exc
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self._net = net
        self._names = list(net.getUnconnectedOutLayersNames())
        self._nhwc = input_layout.upper() == "NHWC"  # TF-style input: OpenCV takes NCHW
        self.version = f"opencv {cv2.__version__}"

    def run(self, batch: np.ndarray, wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        if self._nhwc:
            batch = batch.transpose(0, 3, 1, 2)
        self._net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        values = self._net.forward(self._names)
        return dict(zip(self._names, values, strict=True))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

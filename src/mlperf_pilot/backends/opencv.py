"""OpenCV DNN: ONNX, Caffe (.prototxt with its .caffemodel beside it), TensorFlow
frozen graphs (.pb) and Darknet (.cfg with its .weights beside it); CPU, and CUDA
with an OpenCV built with CUDA (the PyPI wheels are not).

cv2.dnn takes NCHW blobs; a card whose input is NHWC (TF-style) is transposed, as
OpenCV's TensorFlow importer expects. One ``cv2.dnn.Net`` runs one call at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line, select_outputs
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError, DeviceUnavailableError

# the second file a format needs, found next to the first
_WEIGHTS = {".prototxt": ".caffemodel", ".cfg": ".weights"}


class OpenCvBackend(Backend):
    name = "opencv"
    formats = ("onnx", "caffe", "tensorflow", "darknet")
    devices = (Device.CPU, Device.CUDA)
    package = "opencv-python-headless"
    import_name = "cv2"
    extra = "opencv"
    alternatives = ("opencv-python", "opencv-contrib-python")
    thread_safe = False

    def __init__(self) -> None:
        self._net: Any = None
        self._names: list[str] = []
        self._outputs: list[str] = []
        self._nhwc = False
        self._device = ""

    @classmethod
    def available_devices(cls) -> list[Device]:
        import cv2

        return [Device.CPU, *([Device.CUDA] if _cuda_devices(cv2) else [])]

    def load(self, options: LoadOptions) -> None:
        import cv2

        if options.device is Device.CUDA and not _cuda_devices(cv2):
            raise DeviceUnavailableError(
                f"--device cuda was asked but OpenCV {cv2.__version__} has no CUDA device "
                "(the PyPI wheels are built without CUDA)",
                hint="build OpenCV with CUDA and cuDNN, or use --device cpu",
            )
        cv2.setNumThreads(max(1, options.threads))
        net = _read_net(cv2, Path(options.model_path))
        if options.device is Device.CUDA:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
            self._device = "cuda (DNN_BACKEND_CUDA)"
        else:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            self._device = "cpu (DNN_BACKEND_OPENCV)"
        self._names = list(net.getUnconnectedOutLayersNames())
        shape = options.inputs[0].shape
        self._nhwc = len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
        self._outputs = list(options.outputs)
        self._net = net

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._nhwc:
            batch = batch.transpose(0, 3, 1, 2)
        blob = np.ascontiguousarray(batch, dtype=np.float32)
        self._net.setInput(blob)
        values = self._net.forward(self._names)
        return select_outputs(dict(zip(self._names, values, strict=True)), self._outputs,
                              "the OpenCV network")

    @property
    def device_in_use(self) -> str:
        return self._device if self._net is not None else "(not loaded)"

    def close(self) -> None:
        self._net = None


def _cuda_devices(cv2: Any) -> int:
    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (AttributeError, cv2.error):
        return 0


def _read_net(cv2: Any, path: Path) -> Any:
    if not path.is_file():
        raise BackendError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    weights = path.with_suffix(_WEIGHTS[suffix]) if suffix in _WEIGHTS else None
    if weights is not None and not weights.is_file():
        raise BackendError(f"{path.name} needs {weights.name} beside it",
                           hint=f"put the {weights.suffix} file next to {path.name}")
    try:
        if suffix == ".onnx":
            return cv2.dnn.readNetFromONNX(str(path))
        if suffix == ".prototxt":
            return cv2.dnn.readNetFromCaffe(str(path), str(weights))
        if suffix == ".pb":
            return cv2.dnn.readNetFromTensorflow(str(path))
        if suffix == ".cfg":
            return cv2.dnn.readNetFromDarknet(str(path), str(weights))
    except cv2.error as exc:
        raise BackendError(f"OpenCV cannot read {path}: {first_line(exc)}",
                           hint="OpenCV DNN supports fewer layers than the frameworks; "
                           "try the onnxruntime backend") from exc
    raise BackendError(
        f"OpenCV DNN does not know the file type of {path.name}",
        hint="use .onnx, .prototxt (+ .caffemodel), .pb (frozen graph) or .cfg (+ .weights)",
    )

"""ONNX Runtime: CPU, and CUDA when asked (and proven to be in use)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError, DeviceUnavailableError

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)
    devices = (Device.CPU, Device.CUDA)
    package = "onnxruntime"
    import_name = "onnxruntime"
    extra = None  # a core dependency; onnxruntime-gpu for CUDA
    alternatives = ("onnxruntime-gpu",)

    def __init__(self) -> None:
        self._session: Any = None
        self._input_name = ""
        self._outputs: list[str] = []
        self._fixed_batch: int | None = None
        self._run_options: Any = None

    @classmethod
    def available_devices(cls) -> list[Device]:
        import onnxruntime as ort

        found = [Device.CPU]
        if _CUDA in ort.get_available_providers():
            found.append(Device.CUDA)
        return found

    def load(self, options: LoadOptions) -> None:
        import onnxruntime as ort

        providers = self._providers(ort, options.device)
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, options.threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # Spinning idle intra-op threads cut batch-1 latency (about 20% on 2 cores) but take
        # the cores LoadGen's issue thread needs in Server (p99 17 ms instead of 4 ms).
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if options.spin_wait else "0"
        )
        if options.spin_wait and not options.spin_between_runs:
            # spin between the ops of a run, stop as soon as the run returns
            so.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            session = ort.InferenceSession(str(options.model_path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(
                f"onnxruntime cannot load {options.model_path}: {first_line(exc)}",
                hint="check that the file is a complete ONNX model (re-download it)",
            ) from exc
        if options.device is Device.CUDA and session.get_providers()[0] != _CUDA:
            raise DeviceUnavailableError(
                f"--device cuda was asked but onnxruntime put the model on "
                f"{session.get_providers()[0]}",
                hint="check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu",
            )
        self._bind_io(session, options)
        # a failed inference surfaces as an exception with the message; keep onnxruntime
        # from also printing it to stderr
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        self._session = session

    @staticmethod
    def _providers(ort: Any, device: Device) -> list[str]:
        if device is Device.CPU:
            return [_CPU]
        available = ort.get_available_providers()
        if _CUDA not in available:
            raise DeviceUnavailableError(
                f"--device cuda was asked but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)})",
                hint="pip uninstall onnxruntime && pip install onnxruntime-gpu, "
                "or use --device cpu",
            )
        return [_CUDA, _CPU]

    def _bind_io(self, session: Any, options: LoadOptions) -> None:
        model_inputs = {i.name: i for i in session.get_inputs()}
        wanted = options.inputs[0].name
        if wanted not in model_inputs:
            if len(model_inputs) != 1:
                raise BackendError(
                    f"the model has no input named {wanted!r} (it has {sorted(model_inputs)})",
                    hint="this file does not match the model card; pass the right --model-path",
                )
            wanted = next(iter(model_inputs))
        self._input_name = wanted
        batch_dim = model_inputs[wanted].shape[0] if model_inputs[wanted].shape else None
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        model_outputs = [o.name for o in session.get_outputs()]
        missing = [o for o in options.outputs if o not in model_outputs]
        if missing:
            raise BackendError(
                f"the model has no output named {missing[0]!r} (it has {model_outputs})",
                hint="this file does not match the model card; pass the right --model-path",
            )
        self._outputs = list(options.outputs)

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(  # type: ignore[no-any-return]
            self._outputs, {self._input_name: batch}, self._run_options
        )

    @property
    def device_in_use(self) -> str:
        return self._session.get_providers()[0] if self._session is not None else "(not loaded)"

    @property
    def fixed_batch_size(self) -> int | None:
        return self._fixed_batch

    def close(self) -> None:
        self._session = None


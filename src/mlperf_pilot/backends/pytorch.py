"""PyTorch: TorchScript archives, torch.export archives (.pt2), and whole pickled
modules where the card says so (``options: {pickled: true}``); CPU and CUDA.

Install ``torch==2.13.0`` (the ``pytorch`` extra) before anything that depends on torch:
an unpinned torch pulls several GB of CUDA packages.
"""

from __future__ import annotations

import contextlib
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions, first_line, select_outputs
from mlperf_pilot.config import Device
from mlperf_pilot.errors import BackendError, DeviceUnavailableError


class PyTorchBackend(Backend):
    name = "pytorch"
    formats = ("pytorch",)
    devices = (Device.CPU, Device.CUDA)
    package = "torch"
    import_name = "torch"
    extra = "pytorch"

    def __init__(self) -> None:
        self._torch: Any = None
        self._model: Any = None
        self._device: Any = None
        self._outputs: list[str] = []
        self._kind = ""
        self._threads = 1
        self._configured = threading.local()

    @classmethod
    def available_devices(cls) -> list[Device]:
        import torch

        return [Device.CPU, *([Device.CUDA] if torch.cuda.is_available() else [])]

    def load(self, options: LoadOptions) -> None:
        import torch

        self._torch = torch
        if options.device is Device.CUDA and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"--device cuda was asked but torch {torch.__version__} sees no CUDA device",
                hint="install a CUDA build of torch on a machine with a GPU, or use --device cpu",
            )
        self._threads = max(1, options.threads)
        torch.set_num_threads(self._threads)
        with contextlib.suppress(RuntimeError):  # allowed once per process, before work
            torch.set_num_interop_threads(1)
        self._device = torch.device("cuda" if options.device is Device.CUDA else "cpu")
        model, self._kind = _load_module(torch, Path(options.model_path), self._device,
                                         pickled=bool(options.extra.get("pickled")))
        model.eval()
        actual = _parameter_device(model)
        if actual is not None and actual.type != self._device.type:
            raise DeviceUnavailableError(
                f"the model's weights are on {actual}, not {self._device}",
                hint="re-export the model without a fixed device, or use --device "
                f"{actual.type if actual.type == 'cpu' else 'cuda'}",
            )
        self._model = model
        self._outputs = list(options.outputs)

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        if not getattr(self._configured, "done", False):
            # the OpenMP thread count is per calling thread: a SUT worker that did not
            # set it runs single-threaded (measured: 38 ms instead of 17 ms per image)
            torch.set_num_threads(self._threads)
            self._configured.done = True
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            if self._device.type != "cpu":
                x = x.to(self._device, non_blocking=True)
            out = self._model(x)
        return self._to_numpy(out)

    def _to_numpy(self, out: Any) -> list[np.ndarray]:
        if isinstance(out, dict):
            named = {k: v.detach().cpu().numpy() for k, v in out.items()}
            return select_outputs(named, self._outputs, "the torch model")
        if isinstance(out, (tuple, list)):
            values = [v.detach().cpu().numpy() for v in out]
            if len(values) < len(self._outputs):
                raise BackendError(
                    f"the torch model returned {len(values)} outputs, the card names "
                    f"{len(self._outputs)} ({self._outputs})",
                    hint="this file does not match the model card",
                )
            return values[: len(self._outputs)]
        return [out.detach().cpu().numpy()]

    @property
    def device_in_use(self) -> str:
        if self._device is None:
            return "(not loaded)"
        if self._device.type == "cuda":
            return f"cuda:0 ({self._torch.cuda.get_device_name(0)}), {self._kind}"
        return f"cpu, {self._kind}"

    def close(self) -> None:
        self._model = None


def _load_module(torch: Any, path: Path, device: Any, *, pickled: bool) -> tuple[Any, str]:
    """(module, kind): a TorchScript archive, a torch.export archive, or a pickled module."""
    if not path.is_file():
        raise BackendError(f"torch model file {path} does not exist")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module().to(device), "torch.export"
        if _is_torchscript(path):
            return torch.jit.load(str(path), map_location=device), "TorchScript"
        if pickled:
            module = torch.load(str(path), map_location=device, weights_only=False)
            if not isinstance(module, torch.nn.Module):
                raise BackendError(
                    f"{path.name} holds a {type(module).__name__}, not a torch module",
                    hint="a state_dict needs the model's code: export it with "
                    "torch.jit.trace/script or torch.export first",
                )
            return module, "pickled module"
    except BackendError:
        raise
    except Exception as exc:  # torch raises many types here
        raise BackendError(f"torch cannot load {path}: {first_line(exc)}",
                           hint="check that the file is complete and matches the card") from exc
    raise BackendError(
        f"{path.name} is not a TorchScript or torch.export archive",
        hint="export the model with torch.jit.trace/script or torch.export, or set "
        "options: {pickled: true} in the model card for a whole pickled module",
    )


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name
                   for name in archive.namelist())


def _parameter_device(model: Any) -> Any:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return None

"""The backend plugin interface: load a model on a device, run a batch.

A backend declares the model formats and devices it supports and the pip extra that
installs it; the registry (``mlperf_pilot.backends``) imports a backend's module only
when it is chosen, and the module imports its framework only in ``load``.
"""

from __future__ import annotations

import abc
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from mlperf_pilot.catalog.cards import TensorSpec
from mlperf_pilot.config import Device


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: where, on what, with how many threads."""

    model_path: Path
    inputs: Sequence[TensorSpec]
    outputs: Sequence[str]  # returned by predict() in this order
    device: Device = Device.CPU
    threads: int = 1  # intra-op threads for this backend instance
    # let idle worker threads busy-wait for the next op (lower latency, but they hold
    # their cores); off where LoadGen's own threads need the CPU (Server)
    spin_wait: bool = True
    # with spin_wait: whether they go on spinning once a run has ended, waiting for the
    # next one (the local SUT, whose next query comes at once) or stop at its end (a
    # server, whose HTTP side needs the cores between requests)
    spin_between_runs: bool = True
    extra: dict[str, object] = field(default_factory=dict)


class Backend(abc.ABC):
    """One loaded model. Not thread-safe unless the subclass says so."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]  # model file formats, the preferred one first
    devices: ClassVar[tuple[Device, ...]]
    package: ClassVar[str | None]  # distribution name whose presence means "installed"
    import_name: ClassVar[str | None]
    extra: ClassVar[str | None] = None  # the mlperf-pilot extra that installs it
    # whether predict() may be called from several SUT worker threads at once; the SUT
    # serialises calls to a backend that is not
    thread_safe: ClassVar[bool] = True
    # False for a backend that answers without a model file (the null backend): no file
    # is resolved, and its outputs are not checked against the card's postprocess
    needs_model: ClassVar[bool] = True

    @classmethod
    def is_installed(cls) -> bool:
        return cls.import_name is None or importlib.util.find_spec(cls.import_name) is not None

    # other distributions that provide the same import (e.g. onnxruntime-gpu)
    alternatives: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def version(cls) -> str | None:
        if cls.package is None:
            return None
        for dist in (cls.package, *cls.alternatives):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    @classmethod
    def available_devices(cls) -> list[Device]:
        """Devices this installation can actually use (cheap; may import the framework)."""
        return [Device.CPU] if Device.CPU in cls.devices else []

    @abc.abstractmethod
    def load(self, options: LoadOptions) -> None:
        """Load the model; raise BackendError/DeviceUnavailableError with the cause."""

    @abc.abstractmethod
    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch; returns the outputs named in ``LoadOptions.outputs``."""

    @property
    @abc.abstractmethod
    def device_in_use(self) -> str:
        """What actually runs the model, e.g. ``CPUExecutionProvider``."""

    @property
    def fixed_batch_size(self) -> int | None:
        """The batch size the model file fixes, or None when it is dynamic."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model (default: nothing)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (frameworks write long ones)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def select_outputs(named: dict[str, np.ndarray], wanted: Sequence[str], origin: str
                   ) -> list[np.ndarray]:
    """The outputs the card names, in its order. A model with exactly one output may
    call it anything (exporters rename outputs: ``output_0``, ``Identity``)."""
    if all(name in named for name in wanted):
        return [named[name] for name in wanted]
    if len(wanted) == 1 and len(named) == 1:
        return list(named.values())
    missing = next(name for name in wanted if name not in named)
    from mlperf_pilot.errors import BackendError

    raise BackendError(
        f"{origin} has no output named {missing!r} (it has {sorted(named)})",
        hint="this file does not match the model card; pass the right --model-path",
    )

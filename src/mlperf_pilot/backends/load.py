"""The one place a model is loaded: a backend by name, a card format, a file."""

from __future__ import annotations

from pathlib import Path

from mlperf_pilot.backends import LoadOptions, create_backend
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.catalog.cards import ModelFormat
from mlperf_pilot.vocab import Device


def load_model(backend: str, fmt: ModelFormat, model_path: Path | None, *,
               device: Device = Device.CPU, threads: int = 1, spin_wait: bool = True,
               spin_between_runs: bool = True) -> Backend:
    """A loaded backend: the format's inputs, outputs and options, on ``device`` with
    ``threads`` intra-op threads (``model_path`` None: a backend that needs no file)."""
    instance = create_backend(backend)
    instance.load(LoadOptions(
        model_path=model_path or Path("none"), inputs=fmt.inputs,
        outputs=fmt.postprocess.outputs, device=device, threads=threads,
        spin_wait=spin_wait, spin_between_runs=spin_between_runs, extra=dict(fmt.options),
    ))
    return instance


__all__ = ["load_model"]

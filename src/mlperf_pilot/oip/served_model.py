"""One model behind the server: its metadata and the checks of a request against it.

The inputs and outputs are the card format's (tensor names, dtypes, shapes: what the
card's preprocessing feeds and its postprocess reads); the output shapes come from a
probe inference at start-up (batch 1 of zeros), written with -1 for the batch. The probe
is also the warm-up: a full batch runs as well, so the first request meets a warm model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend, first_line
from mlperf_pilot.catalog.cards import ModelFormat, TensorSpec
from mlperf_pilot.errors import BackendError
from mlperf_pilot.oip.protocol import InferRequest, ProtocolError, datatype_of, dtype_of

MODEL_VERSION = "1"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str  # e.g. "FP32"
    shape: tuple[int, ...]  # -1 for a dynamic size (the batch)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _dims(spec: TensorSpec) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in spec.shape)


@dataclass
class ServedModel:
    """A loaded backend with the card format's interface, as the server presents it."""

    name: str
    platform: str  # "mlperf-pilot/<backend>"
    backend: Backend
    input: TensorMeta
    outputs: tuple[TensorMeta, ...]
    max_batch_size: int
    version: str = MODEL_VERSION
    details: dict[str, Any] = field(default_factory=dict)  # backend version, device
    _output_index: dict[str, int] = field(default_factory=dict, repr=False)
    _dtype: np.dtype[Any] = field(default=np.dtype(np.float32), repr=False)

    def __post_init__(self) -> None:
        self._output_index = {meta.name: n for n, meta in enumerate(self.outputs)}
        self._dtype = dtype_of(self.input.datatype)

    # ------------------------------------------------------------------- metadata

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [self.version], "platform": self.platform,
                "inputs": [self.input.as_json()],
                "outputs": [meta.as_json() for meta in self.outputs],
                "parameters": {"max_batch_size": self.max_batch_size, **self.details}}

    # -------------------------------------------------------------- request checks

    def input_of(self, request: InferRequest) -> np.ndarray:
        """The request's input array, checked against the model (ProtocolError naming
        the tensor)."""
        spec = self.input
        if len(request.inputs) != 1 or request.inputs[0].name != spec.name:
            for tensor in request.inputs:
                if tensor.name != spec.name:
                    raise ProtocolError(
                        f"input tensor {tensor.name!r} is not an input of model "
                        f"{self.name!r} (its input: {spec.name!r})")
            if not request.inputs:
                raise ProtocolError(f"input tensor {spec.name!r} is missing")
            raise ProtocolError(f"input tensor {spec.name!r} is given more than once")
        array = request.inputs[0].array
        if array.dtype != self._dtype:
            raise ProtocolError(f"input tensor {spec.name!r} is {datatype_of(array.dtype)}, "
                                f"model {self.name!r} takes {spec.datatype}")
        shape = array.shape
        expected = spec.shape
        if len(shape) != len(expected) or any(
                want > 0 and got != want
                for got, want in zip(shape[1:], expected[1:], strict=True)):
            raise ProtocolError(f"input tensor {spec.name!r} has shape {list(shape)}, model "
                                f"{self.name!r} takes {list(expected)} (-1: any size)")
        if shape[0] == 0:
            raise ProtocolError(f"input tensor {spec.name!r} has no samples (batch size 0)")
        return array

    def outputs_of(self, request: InferRequest) -> tuple[list[tuple[str, int]], set[str]]:
        """The outputs to send (name, index in the backend's outputs), in the order asked
        (all when none is named), and those to send as binary data."""
        if request.outputs:
            chosen = []
            for wanted in request.outputs:
                index = self._output_index.get(wanted.name)
                if index is None:
                    have = ", ".join(repr(meta.name) for meta in self.outputs)
                    raise ProtocolError(f"output tensor {wanted.name!r} is not an output of "
                                        f"model {self.name!r} (its outputs: {have})")
                chosen.append((wanted.name, index))
        else:
            chosen = [(meta.name, n) for n, meta in enumerate(self.outputs)]
        binary = {name for name, _ in chosen if request.wants_binary(name)}
        return chosen, binary


def probe(backend: Backend, fmt: ModelFormat, *, name: str, backend_name: str,
          max_batch_size: int, output_names: Sequence[str]) -> ServedModel:
    """Run the backend once on zeros (batch 1, then a full batch) and describe it."""
    if len(fmt.inputs) != 1:
        raise BackendError(f"{name} format {fmt.id} has {len(fmt.inputs)} inputs; the server "
                           "serves models with one input", hint="choose another --model-format")
    spec = fmt.inputs[0]
    dims = _dims(spec)
    sample = tuple(d if d > 0 else 1 for d in dims[1:])
    dtype = np.dtype(spec.dtype)
    fixed = backend.fixed_batch_size
    largest = min(max_batch_size, fixed) if fixed else max_batch_size
    try:
        outputs = backend.predict(np.zeros((1, *sample), dtype=dtype))
        if largest > 1:
            backend.predict(np.zeros((largest, *sample), dtype=dtype))
    except Exception as exc:
        raise BackendError(f"the {backend_name} backend failed on a probe batch of zeros: "
                           f"{first_line(exc)}",
                           hint="check the model file and --model-format") from exc
    if len(outputs) != len(output_names):
        raise BackendError(f"the {backend_name} backend returned {len(outputs)} outputs, the "
                           f"card names {len(output_names)}", hint="check --model-path")
    metas = []
    for out_name, output in zip(output_names, outputs, strict=True):
        array = np.asarray(output)
        metas.append(TensorMeta(out_name, datatype_of(array.dtype),
                                (-1, *array.shape[1:]) if array.ndim else ()))
    return ServedModel(
        name=name, platform=f"mlperf-pilot/{backend_name}", backend=backend,
        input=TensorMeta(spec.name, datatype_of(dtype), dims), outputs=tuple(metas),
        max_batch_size=largest,
        details={"backend_version": type(backend).version() or "",
                 "device": backend.device_in_use})


__all__ = ["MODEL_VERSION", "ServedModel", "TensorMeta", "probe"]

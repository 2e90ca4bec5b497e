"""What travels through the bucket between the host (LoadGen's side) and a function: the
key layout and the request and output objects, for both ends.

This module is imported by the function's handler too, so it needs nothing beyond the
standard library and numpy (no pydantic, no boto3): the handler package stays small.

Key layout in the bucket (``prefix`` is empty by default; every run has its own run id,
so a run never trips over objects an earlier run left behind)::

    models/<sha256>/<file name>                the model file, uploaded once by checksum
    datasets/<dataset key>/<sample index>.npy  preprocessed samples, uploaded once
    input/<run id>/<request id>.json           a request: the trigger's prefix is input/
    output/<run id>/<request id>.json          its answer: the completion queue's prefix
    completed/<run id>/<request id>.json       the request's JSON line, when it was answered

A **request** names the samples of one LoadGen query (or one batch of an Offline query)
and where its preprocessed samples are (``sample_keys``, always). When the batch is small
enough (the host's ``inline_samples_mb``, 8 MB by default) the request also *carries*
the samples: its object is then the request's JSON on one line, a newline (byte 0x0A),
and the stacked batch's raw little-endian C-order bytes, which ``inline`` describes
(``{"dtype": "<f4", "shape": [n, ...]}``); the function uses those and skips the GETs
of ``datasets/``. Without ``inline`` the object is the JSON alone (any layout) and the
function reads ``sample_keys``. :meth:`Request.to_bytes` and :meth:`Request.parse`
write and read both forms. The function answers with an **output** object
holding, per output tensor, its datatype, shape and little-endian bytes (base64), plus
the timings of the seed's ``inf_perf`` (``load_model``, ``image_operations``,
``forward``, in ms), ``start_time``/``finish_time`` (epoch seconds) and whether the
instance was cold. A function that failed still writes its output object, with ``ok:
false`` and the error; the host counts its samples failed and never makes up outputs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

VERSION = 2  # 2: a request may carry its samples (a version-1 function cannot read it)
INPUT, OUTPUT, COMPLETED = "input/", "output/", "completed/"
MODELS, DATASETS = "models/", "datasets/"


class MessageError(ValueError):
    """An object that is not a request or output of this version (one line)."""


def input_key(run_id: str, request_id: str, prefix: str = "") -> str:
    return f"{prefix}{INPUT}{run_id}/{request_id}.json"


def output_key(run_id: str, request_id: str, prefix: str = "") -> str:
    return f"{prefix}{OUTPUT}{run_id}/{request_id}.json"


def completed_key(run_id: str, request_id: str, prefix: str = "") -> str:
    return f"{prefix}{COMPLETED}{run_id}/{request_id}.json"


def model_key(sha256: str, file_name: str, prefix: str = "") -> str:
    return f"{prefix}{MODELS}{sha256}/{file_name}"


def sample_key(dataset_key: str, index: int, prefix: str = "") -> str:
    return f"{prefix}{DATASETS}{dataset_key}/{int(index)}.npy"


@dataclass
class Request:
    """One request object (``input/<run>/<request>.json``)."""

    run_id: str
    request_id: str
    sample_keys: list[str]  # the preprocessed samples, in batch order
    output_key: str
    completed_key: str
    outputs: list[str] = field(default_factory=list)  # the card's output names, in order
    issued_at: float = 0.0  # epoch seconds, when the host wrote it
    # the samples travel in the object (after its JSON line): their dtype and shape
    inline: dict[str, Any] | None = None
    version: int = VERSION

    def to_json(self) -> bytes:
        """The request's JSON (one line; without any inline samples' bytes)."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    def to_bytes(self, samples: np.ndarray | None = None) -> bytes:
        """The request object: its JSON, and with ``samples`` (the stacked batch, in
        ``sample_keys`` order) a newline and their little-endian bytes (sets ``inline``)."""
        if samples is None:
            self.inline = None
            return self.to_json()
        little = np.ascontiguousarray(samples, dtype=samples.dtype.newbyteorder("<"))
        self.inline = {"dtype": little.dtype.str, "shape": list(little.shape)}
        return b"".join((self.to_json(), b"\n", memoryview(little).cast("B")))

    @classmethod
    def from_json(cls, data: bytes | str) -> Request:
        """The request of an object (its JSON line when it carries samples, which are
        not checked: :meth:`parse` reads them)."""
        return cls._split(data)[0]

    @classmethod
    def parse(cls, data: bytes | str) -> tuple[Request, np.ndarray | None]:
        """The request and, when it carries them, its samples (a read-only array over
        ``data``, no copy); MessageError for anything else."""
        request, payload = cls._split(data)
        if request.inline is None:
            return request, None
        return request, _inline_samples(request, payload)

    @classmethod
    def _split(cls, data: bytes | str) -> tuple[Request, memoryview | None]:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        end = raw.find(b"\n")
        message = payload = None
        if end >= 0:
            try:  # a request with samples: one JSON line, then the bytes
                message, payload = _object(raw[:end], "request"), memoryview(raw)[end + 1:]
            except MessageError:
                message = None
        if message is None or message.get("inline") is None:
            message, payload = _object(raw, "request"), None
        try:
            request = cls(**{k: message[k] for k in cls.__dataclass_fields__ if k in message})
        except TypeError as exc:
            raise MessageError(f"the request object is incomplete: {exc}") from None
        return request, payload


@dataclass
class Timings:
    """The seed's ``inf_perf``, in milliseconds."""

    load_model: float = 0.0  # the instance's model load (repeated in every answer)
    image_operations: float = 0.0  # reading and stacking the preprocessed samples
    forward: float = 0.0  # the backend call


@dataclass
class Output:
    """One output object (``output/<run>/<request>.json``)."""

    run_id: str
    request_id: str
    ok: bool
    tensors: list[dict[str, Any]] = field(default_factory=list)  # see encode_tensor
    error_type: str | None = None
    error_message: str | None = None
    inf_perf: Timings = field(default_factory=Timings)
    cold: bool = False  # the instance loaded its model for this request
    start_time: float = 0.0  # epoch seconds, handler entry
    finish_time: float = 0.0  # epoch seconds, before the output was written
    instance: str = ""  # which instance answered (a Lambda log stream, a local worker)
    memory_mb: int | None = None
    version: int = VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Output:
        message = _object(data, "output")
        timings = message.get("inf_perf") or {}
        try:
            message["inf_perf"] = Timings(**timings)
            return cls(**{k: message[k] for k in cls.__dataclass_fields__ if k in message})
        except TypeError as exc:
            raise MessageError(f"the output object is incomplete: {exc}") from None

    def arrays(self) -> list[np.ndarray]:
        """The output tensors, in the order the request named them."""
        return [decode_tensor(t) for t in self.tensors]


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """A tensor as JSON: name, numpy dtype, shape, base64 of its little-endian bytes."""
    array = np.asarray(array)
    little = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    return {"name": name, "dtype": little.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(memoryview(little).cast("B")).decode("ascii")}


def decode_tensor(entry: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
        raw = base64.b64decode(entry["data"], validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        raise MessageError(f"output tensor {name!r} does not decode: {exc}") from None


def _inline_samples(request: Request, payload: memoryview | None) -> np.ndarray:
    entry = request.inline
    try:
        assert isinstance(entry, dict)
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"the request's inline samples are not described: {exc}") from None
    want = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    have = 0 if payload is None else payload.nbytes
    if have != want or not shape or shape[0] != len(request.sample_keys):
        raise MessageError(f"the request carries {have} bytes of samples for {shape} "
                           f"{dtype} ({want} bytes) and names {len(request.sample_keys)} "
                           "sample(s)")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)  # type: ignore[arg-type]


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise MessageError(f"the {what} object is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MessageError(f"the {what} object is not a JSON object")
    if message.get("version") != VERSION:
        raise MessageError(f"the {what} object has version {message.get('version')!r}; "
                           f"this tool reads version {VERSION}")
    return message


__all__ = ["COMPLETED", "DATASETS", "INPUT", "MODELS", "OUTPUT", "VERSION", "MessageError",
           "Output", "Request", "Timings", "completed_key", "decode_tensor", "encode_tensor",
           "input_key", "model_key", "output_key", "sample_key"]

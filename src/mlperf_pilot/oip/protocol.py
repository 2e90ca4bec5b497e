"""The Open Inference Protocol v2 on the wire (KServe v2 / Triton HTTP/REST): the JSON
tensor format and the binary tensor data extension, for both ends.

A request or response body is a JSON object; with the binary extension it is that JSON
(``Inference-Header-Content-Length`` bytes long) followed by the raw bytes of the tensors
marked ``"parameters": {"binary_data_size": N}``, in the order they are listed. Tensors
in JSON carry their elements as a flat row-major list in ``data``. Binary tensors decode
to read-only views of the body (no copy); ``BYTES`` elements travel as 4-byte
little-endian lengths, each followed by its bytes. JSON has no infinity: a non-finite
float in a JSON tensor is written ``null`` and read back as NaN (binary data carries
every value as it is).

Every malformed message raises :class:`ProtocolError` with one line naming the tensor, so
a server answers 400 with ``{"error": message}`` and a client reports it as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}
_LITTLE = {name: dtype.newbyteorder("<") for name, dtype in DATATYPES.items()
           if name != "BYTES"}


class ProtocolError(ValueError):
    """A message that does not follow the protocol (one line, naming the tensor)."""

    @property
    def message(self) -> str:
        return str(self)


def datatype_of(dtype: Any) -> str:
    """The protocol's name for a numpy dtype (``float32`` -> ``FP32``)."""
    found = np.dtype(dtype)
    if found.kind in "OSU":
        return "BYTES"
    name = _NAMES.get(found.newbyteorder("="))
    if name is None:
        raise ProtocolError(f"no Open Inference Protocol datatype for numpy {found}")
    return name


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a protocol datatype (``FP32`` -> ``float32``)."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise ProtocolError(
            f"unknown datatype {datatype!r} (known: {', '.join(DATATYPES)})") from None


@dataclass
class Tensor:
    name: str
    array: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None = None  # None: the request did not say


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput]
    binary_output: bool = False  # request-level "binary_data_output"
    parameters: dict[str, Any] = field(default_factory=dict)

    def wants_binary(self, output_name: str) -> bool:
        """Whether ``output_name`` goes back as binary data (its own flag, else the
        request's ``binary_data_output``)."""
        for wanted in self.outputs:
            if wanted.name == output_name and wanted.binary is not None:
                return wanted.binary
        return self.binary_output

    def input(self, name: str) -> np.ndarray:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor.array
        raise ProtocolError(f"input tensor {name!r} is missing")


@dataclass
class InferResponse:
    model_name: str
    model_version: str | None
    id: str | None
    outputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)

    def output(self, name: str) -> np.ndarray:
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor.array
        have = ", ".join(t.name for t in self.outputs) or "none"
        raise ProtocolError(f"output tensor {name!r} is not in the response (it has {have})")


# ----------------------------------------------------------------------------- helpers

def header_length_of(headers: Mapping[str, str]) -> int | None:
    """The ``Inference-Header-Content-Length`` value (None when absent)."""
    value = headers.get(HEADER_LENGTH) or headers.get(HEADER_LENGTH.lower())
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH} is not a number: {value!r}") from None
    if length < 0:
        raise ProtocolError(f"{HEADER_LENGTH} is negative: {length}")
    return length


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _split(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview]:
    view = memoryview(body)
    if header_length is None:
        header, rest = view, view[len(view):]
    else:
        if header_length > len(view):
            raise ProtocolError(f"{HEADER_LENGTH} {header_length} is longer than the body "
                                f"({len(view)} bytes)")
        header, rest = view[:header_length], view[header_length:]
    try:
        message = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the JSON header does not parse: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("the JSON header is not an object")
    return message, rest


def _shape(entry: dict[str, Any], what: str) -> tuple[int, ...]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"{what} has no valid shape (a list of sizes >= 0): {shape!r}")
    return tuple(shape)


def _decode_bytes_elements(raw: memoryview, count: int, what: str) -> np.ndarray:
    out = np.empty(count, dtype=object)
    position, size = 0, len(raw)
    for number in range(count):
        if position + 4 > size:
            raise ProtocolError(f"{what}: BYTES data ends before element {number}")
        length = int.from_bytes(raw[position:position + 4], "little")
        position += 4
        if position + length > size:
            raise ProtocolError(f"{what}: BYTES element {number} runs past the data")
        out[number] = bytes(raw[position:position + length])
        position += length
    if position != size:
        raise ProtocolError(f"{what}: {size - position} bytes left after {count} BYTES elements")
    return out


def _encode_bytes_elements(array: np.ndarray) -> bytes:
    parts = []
    for element in array.reshape(-1):
        data = element if isinstance(element, bytes) else str(element).encode()
        parts.append(len(data).to_bytes(4, "little"))
        parts.append(data)
    return b"".join(parts)


def _tensors(entries: Any, rest: memoryview, kind: str) -> list[Tensor]:
    """The tensors of a message (``kind``: "input" or "output"), binary parts taken from
    ``rest`` in order."""
    if not isinstance(entries, list):
        raise ProtocolError(f"'{kind}s' is not a list")
    offset = 0
    tensors: list[Tensor] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"an {kind} tensor has no name")
        name = entry["name"]
        what = f"{kind} tensor {name!r}"
        shape = _shape(entry, what)
        datatype = entry.get("datatype")
        dtype = dtype_of(datatype)
        count = int(np.prod(shape, dtype=np.int64))
        parameters = entry.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProtocolError(f"{what}: 'parameters' is not an object")
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0:
                raise ProtocolError(f"{what}: binary_data_size is not a size: {size!r}")
            if offset + size > len(rest):
                raise ProtocolError(f"{what}: binary_data_size {size} runs past the body "
                                    f"({len(rest) - offset} bytes left)")
            raw = rest[offset:offset + size]
            offset += size
            if datatype == "BYTES":
                array = _decode_bytes_elements(raw, count, what).reshape(shape)
            else:
                expected = count * dtype.itemsize
                if size != expected:
                    raise ProtocolError(f"{what}: {size} bytes of binary data, but shape "
                                        f"{list(shape)} of {datatype} needs {expected}")
                array = np.frombuffer(raw, dtype=_LITTLE[datatype]).reshape(shape)
        else:
            if "data" not in entry:
                raise ProtocolError(f"{what} has neither 'data' nor binary_data_size")
            array = _from_json(entry["data"], dtype, datatype, shape, what)
        tensors.append(Tensor(name, array, parameters))
    if offset != len(rest):
        raise ProtocolError(f"{len(rest) - offset} bytes of binary data follow the tensors "
                            "that no tensor claims")
    return tensors


def _from_json(data: Any, dtype: np.dtype[Any], datatype: str, shape: tuple[int, ...],
               what: str) -> np.ndarray:
    try:
        if datatype == "BYTES":
            flat = np.array([d.encode() if isinstance(d, str) else d
                             for d in np.asarray(data, dtype=object).reshape(-1)],
                            dtype=object)
        else:
            flat = np.asarray(data, dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{what}: its data is not {datatype}: {exc}") from None
    count = int(np.prod(shape, dtype=np.int64))
    if flat.size != count:
        raise ProtocolError(f"{what}: {flat.size} elements of data, but shape {list(shape)} "
                            f"holds {count}")
    return flat.reshape(shape)


def _entry(name: str, array: np.ndarray, binary: bool, chunks: list[bytes | memoryview]
           ) -> dict[str, Any]:
    datatype = datatype_of(array.dtype)
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        if datatype == "BYTES":
            raw: bytes | memoryview = _encode_bytes_elements(array)
        else:
            little = array.astype(array.dtype.newbyteorder("<"), copy=False)
            raw = memoryview(np.ascontiguousarray(little)).cast("B")
        chunks.append(raw)
        entry["parameters"] = {"binary_data_size": len(raw)}
    elif datatype == "BYTES":
        entry["data"] = [e.decode(errors="replace") if isinstance(e, bytes) else str(e)
                         for e in array.reshape(-1)]
    else:
        entry["data"] = np.ascontiguousarray(array).reshape(-1)
    return entry


def _message_parts(header: dict[str, Any], chunks: list[bytes | memoryview]
                   ) -> tuple[list[bytes | memoryview], dict[str, str]]:
    # orjson writes numpy arrays (the JSON mode's data) natively
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return [head], {"Content-Type": JSON_TYPE}
    return [head, *chunks], {"Content-Type": BINARY_TYPE, HEADER_LENGTH: str(len(head))}


def _message(header: dict[str, Any], chunks: list[bytes | memoryview]
             ) -> tuple[bytes, dict[str, str]]:
    parts, headers = _message_parts(header, chunks)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), headers


# ------------------------------------------------------------------------- client side

def encode_request(inputs: Sequence[tuple[str, np.ndarray]], *, outputs: Sequence[str] = (),
                   binary_inputs: bool = True, binary_outputs: bool = True,
                   request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """An infer request's body and headers."""
    parts, headers = encode_request_parts(
        inputs, outputs=outputs, binary_inputs=binary_inputs, binary_outputs=binary_outputs,
        request_id=request_id)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), headers


def encode_request_parts(inputs: Sequence[tuple[str, np.ndarray]], *,
                         outputs: Sequence[str] = (), binary_inputs: bool = True,
                         binary_outputs: bool = True, request_id: str | None = None
                         ) -> tuple[list[bytes | memoryview], dict[str, str]]:
    """An infer request's body as the buffers it is made of (the JSON header, then each
    binary tensor's bytes, views of the arrays: nothing joined), and its headers."""
    chunks: list[bytes | memoryview] = []
    header: dict[str, Any] = {
        "inputs": [_entry(name, np.asarray(array), binary_inputs, chunks)
                   for name, array in inputs]}
    if request_id is not None:
        header["id"] = request_id
    if outputs:
        header["outputs"] = [{"name": name, "parameters": {"binary_data": binary_outputs}}
                             for name in outputs]
    elif binary_outputs:
        header["parameters"] = {"binary_data_output": True}
    return _message_parts(header, chunks)


def decode_response(body: bytes, header_length: int | None) -> InferResponse:
    message, rest = _split(body, header_length)
    if "error" in message and "outputs" not in message:
        raise ProtocolError(f"the server answered an error: {message['error']}")
    name = message.get("model_name")
    if not isinstance(name, str):
        raise ProtocolError("the response has no model_name")
    version = message.get("model_version")
    return InferResponse(
        model_name=name, model_version=None if version is None else str(version),
        id=message.get("id"), outputs=_tensors(message.get("outputs"), rest, "output"),
        parameters=message.get("parameters") or {})


# ------------------------------------------------------------------------- server side

def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    message, rest = _split(body, header_length)
    inputs = _tensors(message.get("inputs"), rest, "input")
    wanted = []
    for entry in message.get("outputs") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError("a requested output has no name")
        parameters = entry.get("parameters") or {}
        binary = parameters.get("binary_data") if isinstance(parameters, dict) else None
        wanted.append(RequestedOutput(entry["name"], None if binary is None else bool(binary)))
    parameters = message.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("the request's 'parameters' is not an object")
    request_id = message.get("id")
    return InferRequest(
        id=None if request_id is None else str(request_id), inputs=inputs, outputs=wanted,
        binary_output=bool(parameters.get("binary_data_output", False)),
        parameters=parameters)


def encode_response(model_name: str, outputs: Sequence[tuple[str, np.ndarray]], *,
                    binary: bool | Collection[str] = False, model_version: str | None = None,
                    request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """An infer response's body and headers; ``binary``: all outputs, or those named."""
    chunks: list[bytes | memoryview] = []
    entries = []
    for name, array in outputs:
        as_binary = binary if isinstance(binary, bool) else name in binary
        entries.append(_entry(name, np.asarray(array), as_binary, chunks))
    header: dict[str, Any] = {"model_name": model_name, "outputs": entries}
    if model_version is not None:
        header["model_version"] = model_version
    if request_id is not None:
        header["id"] = request_id
    return _message(header, chunks)


__all__ = ["BINARY_TYPE", "DATATYPES", "HEADER_LENGTH", "JSON_TYPE", "InferRequest",
           "InferResponse", "ProtocolError", "RequestedOutput", "Tensor", "datatype_of",
           "decode_request", "decode_response", "dtype_of", "encode_request",
           "encode_request_parts", "encode_response", "error_body", "header_length_of"]

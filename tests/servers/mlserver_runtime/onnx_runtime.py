"""An MLServer runtime that serves one ONNX file with onnxruntime (MLServer has none).

Runs inside MLServer's own venv (tests/servers/mlserver_env.py), never in ours. In
model-settings.json::

    "implementation": "onnx_runtime.OnnxModel",
    "parameters": {"uri": "/path/model.onnx",
                   "extra": {"intra_op_threads": 1, "run_in_thread": false}}

``intra_op_threads``: onnxruntime's intra-op pool (0 = its default, all cores);
inter-op is 1 and execution sequential, as our own onnxruntime backend runs.
``run_in_thread``: False (default) runs each inference on MLServer's event loop, one at a
time, as MLServer's own runtimes do; True hands it to a worker thread, so concurrent
requests overlap. The model's inputs and outputs keep the ONNX file's names (the model
card's), and the metadata route (``/v2/models/{name}``) lists them with their datatypes
and shapes (-1 for a dynamic dimension). Inputs decode with MLServer's NumpyCodec and
are cast to the dtype the model takes; a missing input or an unknown requested output is
MLServer's InferenceError (400); a failing inference is an error, never made-up outputs.
"""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor
from mlserver.utils import get_model_uri

# onnxruntime's type strings -> (Open Inference Protocol datatype, numpy dtype)
_TYPES = {
    "tensor(float)": ("FP32", np.float32), "tensor(float16)": ("FP16", np.float16),
    "tensor(double)": ("FP64", np.float64), "tensor(bool)": ("BOOL", np.bool_),
    "tensor(int8)": ("INT8", np.int8), "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32), "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8), "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32), "tensor(uint64)": ("UINT64", np.uint64),
}


def _metadata(node: ort.NodeArg) -> MetadataTensor:
    datatype = _TYPES.get(node.type, ("BYTES", object))[0]
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in node.shape]
    return MetadataTensor(name=node.name, datatype=datatype, shape=shape)


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(extra.get("intra_op_threads", 0))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(path, sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._in_thread = bool(extra.get("run_in_thread", False))
        self._inputs = {n.name: _TYPES.get(n.type, (None, None))[1]
                        for n in self._session.get_inputs()}
        self._outputs = [n.name for n in self._session.get_outputs()]
        self.inputs = [_metadata(n) for n in self._session.get_inputs()]
        self.outputs = [_metadata(n) for n in self._session.get_outputs()]
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        given = {tensor.name: tensor for tensor in payload.inputs}
        feeds = {}
        for name, dtype in self._inputs.items():
            if name not in given:
                raise InferenceError(f"input tensor {name!r} is missing "
                                     f"(the request has {', '.join(given) or 'none'})")
            array = NumpyCodec.decode_input(given[name])
            feeds[name] = np.ascontiguousarray(array, dtype=dtype)
        wanted = [o.name for o in payload.outputs or []] or self._outputs
        unknown = [name for name in wanted if name not in self._outputs]
        if unknown:
            raise InferenceError(f"output tensor {unknown[0]!r} is not an output of "
                                 f"{self.name} (it has {', '.join(self._outputs)})")
        if self._in_thread:
            results = await asyncio.to_thread(self._session.run, wanted, feeds)
        else:
            results = self._session.run(wanted, feeds)
        return InferenceResponse(
            model_name=self.name, model_version=self.version, id=payload.id,
            outputs=[NumpyCodec.encode_output(name, np.asarray(result))
                     for name, result in zip(wanted, results, strict=True)])

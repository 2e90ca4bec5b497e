"""Model conversions a user would otherwise do by hand, as cached asset steps.

``openvino-ir``: ONNX → OpenVINO IR (.xml + .bin) with ``openvino.convert_model``;
``tflite``: TensorFlow SavedModel → .tflite with ``tf.lite.TFLiteConverter`` (float32,
no quantisation). Every conversion runs the converted model next to its source on a
fixed random batch and fails when they disagree (max |diff| > 1e-3). (torch → ONNX is
the demo builders' export step, in ``builders.py``.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlperf_pilot.assets.builders import _require, check_outputs_match
from mlperf_pilot.assets.cache import BuildResult
from mlperf_pilot.catalog.cards import ModelFormat
from mlperf_pilot.errors import AssetError
from mlperf_pilot.registry import Registry

Converter = Callable[[ModelFormat, Path, Path], BuildResult]


def _probe(fmt: ModelFormat) -> np.ndarray:
    shape = [2 if not isinstance(d, int) or d < 1 else d for d in fmt.inputs[0].shape]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def onnx_to_openvino_ir(fmt: ModelFormat, source: Path, folder: Path) -> BuildResult:
    ov = _require("openvino", "openvino", "openvino", "converting ONNX to OpenVINO IR")
    import onnxruntime as ort

    out_path = folder / fmt.file_name
    if out_path.suffix != ".xml":
        raise AssetError(f"an OpenVINO IR file name ends in .xml, not {out_path.name}")
    try:
        model = ov.convert_model(str(source))
        ov.save_model(model, str(out_path), compress_to_fp16=False)
    except Exception as exc:  # openvino raises its own exception types
        raise AssetError(f"OpenVINO cannot convert {source.name}: {exc}") from exc
    probe = _probe(fmt)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    expected = session.run([fmt.postprocess.outputs[0]], {fmt.inputs[0].name: probe})[0]
    # f32: on CPUs with bf16/AMX the plugin would otherwise compute in bf16
    compiled = ov.Core().compile_model(str(out_path), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(probe)[compiled.output(fmt.postprocess.outputs[0])]
    worst = check_outputs_match(got, expected, "OpenVINO IR")
    return BuildResult(main=fmt.file_name, source=f"converted from {source.name} by "
                       f"OpenVINO {ov.__version__}",
                       meta={"tool": "openvino-ir", "openvino": ov.__version__,
                             "max_abs_diff": worst})


def savedmodel_to_tflite(fmt: ModelFormat, source: Path, folder: Path) -> BuildResult:
    tf = _require("tensorflow", "tensorflow-cpu", "tensorflow", "converting to TFLite")
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    out_path = folder / fmt.file_name
    try:
        # freeze the weights into constants first: converted straight from the SavedModel
        # they stay resource variables that the interpreter reads as uninitialised (NaN)
        loaded = tf.saved_model.load(str(source))
        frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], loaded)
        out_path.write_bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and others
        raise AssetError(f"TFLite cannot convert {source.name}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
                         ) from exc
    from mlperf_pilot.backends.tflite import make_interpreter

    probe = _probe(fmt)
    signature = loaded.signatures["serving_default"]
    expected = signature(**{fmt.inputs[0].name: tf.constant(probe)})
    expected = next(iter(expected.values())).numpy()
    interpreter = make_interpreter(out_path, threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(probe.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], probe)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    worst = check_outputs_match(got, expected, "TFLite model")
    return BuildResult(main=fmt.file_name, source=f"converted from the SavedModel by "
                       f"tensorflow {tf.__version__}",
                       meta={"tool": "tflite", "tensorflow": tf.__version__,
                             "max_abs_diff": worst})


# the card's convert.tool -> "module:function" (format, source file, folder) -> BuildResult
CONVERTERS: Registry[Converter] = Registry("model converter", {
    "openvino-ir": f"{__name__}:onnx_to_openvino_ir",
    "tflite": f"{__name__}:savedmodel_to_tflite",
})


# bumped when a converter's method changes, so the cache does not keep the old output
REVISION = {"openvino-ir": 1, "tflite": 2}


def converter_version(tool: str) -> str:
    """The converter library's version: part of the cache key (a new converter is a new
    entry)."""
    import importlib.metadata

    dist = {"openvino-ir": "openvino", "tflite": "tensorflow-cpu"}[tool]
    for name in (dist, "tensorflow") if tool == "tflite" else (dist,):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "missing"


def get_converter(tool: str) -> Converter:
    return CONVERTERS.get(tool)

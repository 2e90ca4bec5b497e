"""The function's engines (mlperf_pilot_fn/engines.py) against the tool's own backends on
the same files and input: the tiny network in every format an engine of the function
reads (ONNX, OpenVINO IR, Caffe, TensorFlow frozen graph, darknet), and the demo model in
every engine its card offers to the function, through the handler."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backend_models as bm
from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.backends import LoadOptions, create_backend
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.catalog.cards import TensorSpec
from mlperf_pilot.progress import NULL_PROGRESS
from mlperf_pilot.serverless.package import (
    PackageOptions,
    model_files,
    resolve_for_function,
    stage_function,
)
from serverless_fn import (
    BUCKET,
    import_function,
    put_request,
    put_samples,
    read_output,
    s3_client,
    s3_event,
)

DEMO = load_catalog().model("efficientnet-lite0-demo")
NCHW = (TensorSpec(name="input", shape=(-1, 3, 224, 224)),)
NHWC = (TensorSpec(name="input", shape=(-1, 224, 224, 3)),)


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


@pytest.fixture(scope="module")
def fn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return import_function(stage_function(tmp_path_factory.mktemp("function")))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("tiny-net")
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            if kind == "onnx":
                made[kind] = bm.write_onnx(root / "tiny.onnx")
            elif kind == "ir":
                from mlperf_pilot.assets.convert import onnx_to_openvino_ir

                folder = root / "ir"
                folder.mkdir()
                onnx_to_openvino_ir(DEMO.format("openvino"), get("onnx"), folder)
                made[kind] = folder / DEMO.format("openvino").file_name
            elif kind == "caffe":
                made[kind] = bm.write_caffe(root / "tiny.prototxt")
            elif kind == "frozen-nhwc":
                made[kind] = bm.write_frozen_graph(root / "tiny-nhwc.pb", nhwc_input=True)
            elif kind == "darknet":
                made[kind] = bm.write_darknet(root / "tiny.cfg")
            else:
                raise ValueError(kind)
        return made[kind]

    return get


CASES = [  # engine, file kind, modules needed
    ("onnxruntime", "onnx", ("onnxruntime", "torch")),
    ("openvino", "ir", ("openvino", "torch")),
    ("openvino", "onnx", ("openvino", "torch")),
    ("opencv", "onnx", ("cv2", "torch")),
    ("opencv", "caffe", ("cv2", "google.protobuf")),
    ("opencv", "frozen-nhwc", ("cv2", "tensorflow")),
    ("opencv", "darknet", ("cv2",)),
]


@pytest.mark.parametrize(("engine", "kind"),
                         [pytest.param(e, k, marks=_needs(*m), id=f"{e}-{k}")
                          for e, k, m in CASES])
def test_engine_answers_what_the_tools_backend_answers(fn: Any, files, engine: str,
                                                       kind: str) -> None:
    from mlperf_pilot_fn.engines import load_engine, select

    path = files(kind)
    nhwc = kind == "frozen-nhwc"
    shape = (3, 224, 224, 3) if nhwc else (3, 3, 224, 224)
    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    backend = create_backend(engine)
    backend.load(LoadOptions(model_path=path, inputs=NHWC if nhwc else NCHW,
                             outputs=("logits",), threads=1))
    try:
        (expected,) = backend.predict(batch)
    finally:
        backend.close()
    loaded = load_engine(engine, path, threads=1, input_layout="NHWC" if nhwc else "NCHW")
    ((name, got),) = select(loaded.run(batch, ["logits"]), ["logits"])
    assert name == "logits"
    np.testing.assert_allclose(np.asarray(got).reshape(expected.shape), expected,
                               rtol=1e-5, atol=1e-5)
    reference = bm.reference_logits(batch.transpose(0, 3, 1, 2) if nhwc else batch)
    np.testing.assert_allclose(np.asarray(got).reshape(3, -1), reference, rtol=1e-4,
                               atol=1e-4)


def test_a_model_without_its_companion_file_is_refused(fn: Any, tmp_path: Path) -> None:
    from mlperf_pilot_fn.engines import EngineError, load_engine

    (tmp_path / "m.xml").write_text("<net/>")
    with pytest.raises(EngineError, match=r"needs m\.bin beside it"):
        load_engine("openvino", tmp_path / "m.xml", threads=1)


# --------------------------------------------------------------- the demo, every engine


def _demo_onnx() -> Path | None:
    """The demo's ONNX file where this machine's own asset cache has it (the tests'
    caches are empty; building it needs torch and the demo package, minutes)."""
    from mlperf_pilot.config.layering import default_cache_dir

    saved = os.environ.pop("MLPERF_PILOT_CACHE", None)
    try:
        real = AssetCache(default_cache_dir())
    finally:
        if saved is not None:
            os.environ["MLPERF_PILOT_CACHE"] = saved
    for entry in real.entries(kind="model", name=DEMO.name):
        if entry.is_intact():
            return entry.target
    return None


DEMO_ENGINES = [  # the demo card's formats the function's engines read
    pytest.param("onnxruntime", "onnx", marks=_needs("onnxruntime"), id="onnxruntime-onnx"),
    pytest.param("openvino", "openvino", marks=_needs("openvino"), id="openvino-ir"),
    pytest.param("openvino", "onnx", marks=_needs("openvino"), id="openvino-onnx"),
    pytest.param("opencv", "onnx", marks=_needs("cv2"), id="opencv-onnx"),
]


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> AssetCache:
    onnx = _demo_onnx()
    if onnx is None:
        pytest.skip("the demo model is not in this machine's asset cache "
                    "(`mlperf-pilot run` builds it)")
    cache = AssetCache(tmp_path_factory.mktemp("demo-cache"))
    cache.add_external("model", DEMO.name, onnx)  # conversions start from it
    return cache


@pytest.mark.parametrize(("engine", "format_id"), DEMO_ENGINES)
def test_the_demo_model_runs_in_every_engine_through_the_handler(
        fn: Any, demo_cache: AssetCache, moto_url: str, engine: str, format_id: str) -> None:
    _card, fmt, path, _source, _verified = resolve_for_function(
        PackageOptions(model=DEMO.name, backend=engine, model_format=format_id,
                       out_dir=Path(".")), cache=demo_cache, progress=NULL_PROGRESS)
    assert path is not None and fmt.id == format_id
    assert [p.suffix for p in model_files(path)] == (
        [".xml", ".bin"] if format_id == "openvino" else [".onnx"])
    s3 = s3_client(moto_url)
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(5)
    arrays = [rng.uniform(-1, 1, (3, 224, 224)).astype(np.float32) for _ in range(3)]
    request = put_request(s3, "demo", "q0", put_samples(s3, "demo", arrays), ["logits"])
    instance = fn.Instance(fn.Settings(backend=engine, model_dir=str(path.parent),
                                       model_file=path.name, s3_endpoint=moto_url,
                                       threads=1)).load()
    assert instance.load_error is None, instance.load_error
    assert instance.handle(s3_event(BUCKET, "input/demo/q0.json"))["ok"]
    assert instance.settle()  # its move done before the next engine's q0 is put
    (logits,) = read_output(s3, request.output_key).arrays()
    onnx = create_backend("onnxruntime")
    onnx.load(LoadOptions(model_path=_demo_onnx(), inputs=NCHW, outputs=("logits",),
                          threads=1))
    (expected,) = onnx.predict(np.stack(arrays))
    onnx.close()
    assert logits.shape == expected.shape == (3, 1000)
    assert (logits.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)

"""A third-party Open Inference Protocol server: MLServer 1.7.1, real, on 127.0.0.1.

MLServer runs from its own venv (tests/servers/mlserver_env.py: created once and cached)
and serves the demo's ONNX file through the tests' runtime
(tests/servers/mlserver_runtime/onnx_runtime.py); tests/servers/mlserver.py starts it
and stops it by PID. What MLServer 1.7.1 speaks, as these tests pin down: the JSON
tensor format only. Its REST server parses every body as JSON, so a request in the
binary tensor data extension fails FastAPI's body validation (a 422 echoing the body,
or a plain-text 500 where the tensor bytes are not UTF-8), and ``binary_data_output`` is
ignored (the answer is JSON). So our client talks to it with ``--protocol json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from mlperf_pilot.oip import protocol

pytestmark = pytest.mark.mlserver

DEMO = "efficientnet-lite0-demo"
REMOTE = "lite0-on-mlserver"  # a server-side name unlike the card's: --remote-model


@pytest.fixture(scope="module")
def demo_assets() -> tuple[Path, Path]:
    """The demo's ONNX file and its photos, from the user's asset cache (built there on
    first use, as `mlperf-pilot run` does); skipped where the [demo] extra is missing."""
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.assets.models import resolve_model
    from mlperf_pilot.catalog import load_catalog
    from mlperf_pilot.config.layering import default_cache_dir
    from mlperf_pilot.datasets.demo import build_demo_set
    from mlperf_pilot.errors import DatasetError, MissingDependencyError

    catalog, cache = load_catalog(), AssetCache(default_cache_dir())
    card = catalog.model(DEMO)
    try:
        model = resolve_model(card, card.format(card.default_format), None, cache).path
        photos = build_demo_set(catalog.dataset(card.dataset), cache).root
    except (MissingDependencyError, DatasetError) as exc:
        pytest.skip(f"the demo's model or photos cannot be made here: {exc.message}")
    return model, photos


@pytest.fixture(scope="module")
def demo_mlserver(mlserver_python: Path, demo_assets: tuple[Path, Path],
                  tmp_path_factory: pytest.TempPathFactory):
    from servers.mlserver import start_mlserver

    with start_mlserver(demo_assets[0], tmp_path_factory.mktemp("mlserver"), name=REMOTE,
                        intra_op_threads=1, python=mlserver_python) as server:
        yield server


def _local_logits(model: Path, batch: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the server's session: the same kernels
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": batch})
    return logits


def _infer(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    # a fresh connection each time: MLServer closes the one a failed request came on
    with httpx.Client(base_url=url, timeout=30.0) as client:
        return client.post(f"/v2/models/{REMOTE}/infer", content=body, headers=headers)


def _infer_at(url: str, model: str, body: bytes, headers: dict[str, str]) -> bytes:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        answer = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text[:500]
    return answer.content


def test_it_listens_on_loopback_only(demo_mlserver) -> None:
    from servers.mlserver import listening_sockets

    sockets = listening_sockets(demo_mlserver.pid)
    assert sockets == sorted([("127.0.0.1", demo_mlserver.http_port),
                              ("127.0.0.1", demo_mlserver.grpc_port)]), sockets


def test_metadata_shows_the_cards_tensor_names(demo_mlserver) -> None:
    with httpx.Client(base_url=demo_mlserver.url, timeout=10.0) as client:
        server = client.get("/v2").json()
        model = client.get(f"/v2/models/{REMOTE}").json()
        assert client.get("/v2/health/live").status_code == 200
    assert server["name"] == "mlserver" and server["version"] == "1.7.1"
    assert model["name"] == REMOTE
    assert model["inputs"] == [{"name": "input", "datatype": "FP32",
                                "shape": [-1, 3, 224, 224]}]
    assert model["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]


@pytest.mark.parametrize("binary_outputs", [False, True], ids=["json", "json-asks-binary"])
def test_json_requests_get_the_local_sessions_logits(
        demo_mlserver, demo_assets: tuple[Path, Path], binary_outputs: bool) -> None:
    batch = np.random.default_rng(14).standard_normal((3, 3, 224, 224)).astype(np.float32)
    body, headers = protocol.encode_request([("input", batch)], outputs=["logits"],
                                            binary_inputs=False,
                                            binary_outputs=binary_outputs, request_id="r-1")
    answer = _infer(demo_mlserver.url, body, headers)
    assert answer.status_code == 200, answer.text[:500]
    # MLServer answers in JSON even when binary outputs are asked for
    assert protocol.HEADER_LENGTH.lower() not in {k.lower() for k in answer.headers}
    assert answer.headers["content-type"].startswith("application/json")
    response = protocol.decode_response(answer.content,
                                        protocol.header_length_of(answer.headers))
    assert response.model_name == REMOTE and response.id == "r-1"
    logits = response.output("logits")
    assert logits.shape == (3, 1000) and logits.dtype == np.float32
    local = _local_logits(demo_assets[0], batch)
    # FP32 through JSON (as doubles) comes back bit for bit
    np.testing.assert_array_equal(logits, local)
    assert list(logits.argmax(axis=1)) == list(local.argmax(axis=1))


def test_the_binary_extension_is_refused(demo_mlserver) -> None:
    """MLServer 1.7.1 has no binary tensor data extension on REST: FastAPI fails to parse
    the body as JSON and answers its validation error, a 422 echoing the whole body back
    when the tensor bytes happen to be UTF-8 (zeros), else a plain-text 500 (its error
    handler cannot decode them); never outputs."""
    for fill, status in ((0.0, 422), (1.0, 500)):  # 1.0f is 00 00 80 3f: not UTF-8
        batch = np.full((1, 3, 224, 224), fill, dtype=np.float32)
        body, headers = protocol.encode_request([("input", batch)], binary_inputs=True,
                                                binary_outputs=True)
        assert protocol.HEADER_LENGTH in headers
        answer = _infer(demo_mlserver.url, body, headers)
        assert answer.status_code == status, answer.text[:300]
        if status == 422:
            (problem,) = answer.json()["detail"]
            assert problem["loc"] == ["body"] and "valid dictionary" in problem["msg"]
        else:
            assert answer.text == "Internal Server Error"
    # and it still serves JSON afterwards
    body, headers = protocol.encode_request([("input", batch)], binary_inputs=False,
                                            binary_outputs=False)
    assert _infer(demo_mlserver.url, body, headers).status_code == 200


def test_a_request_without_the_models_input_is_a_400_naming_it(demo_mlserver) -> None:
    body, headers = protocol.encode_request(
        [("pixels", np.zeros((1, 3, 224, 224), dtype=np.float32))], binary_inputs=False,
        binary_outputs=False)
    answer = _infer(demo_mlserver.url, body, headers)
    assert answer.status_code == 400
    assert "'input' is missing" in answer.json()["error"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    from mlperf_pilot.cli.main import main

    code = main(["run", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    (record,) = summary["records"]
    return {**record, "run_notes": summary["notes"]}


def test_the_demo_through_mlserver_scores_the_local_top1(
        demo_mlserver, demo_assets: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`run --sut oip --endpoint` against MLServer in accuracy mode: the same predictions,
    sample by sample, and the same accuracy as the local SUT on the same photos."""
    model, photos = demo_assets
    common = ("--model", DEMO, "--dataset-path", str(photos), "--scenario", "Offline",
              "--mode", "accuracy")
    local = _run(capsys, *common, "--model-path", str(model),
                 "--results-dir", str(tmp_path / "local"))
    # no --protocol: MLServer lists no binary_tensor_data extension, so auto picks JSON
    remote = _run(capsys, *common, "--sut", "oip", "--endpoint", demo_mlserver.url,
                  "--remote-model", REMOTE, "--results-dir", str(tmp_path / "remote"))
    assert local["status"] == remote["status"] == "VALID", (local["reasons"], remote["reasons"])
    assert remote["sut_kind"] == "oip" and local["sut_kind"] == "local"
    assert remote["samples_failed"] == 0
    assert remote["accuracy"]["text"] == local["accuracy"]["text"]
    # every sample's logged answer (its top-1 class) is the same
    logged = {}
    for name, record in (("local", local), ("remote", remote)):
        entries = json.loads((Path(record["log_dir"]) / "mlperf_log_accuracy.json").read_text())
        logged[name] = sorted((e["qsl_idx"], e["data"]) for e in entries)
    assert logged["remote"] == logged["local"]
    # the record names the server, from its metadata, and the endpoint
    assert (remote["backend"], remote["backend_version"]) == ("mlserver", "1.7.1")
    assert remote["sut_details"]["endpoint"] == demo_mlserver.url
    assert remote["sut_details"]["remote_model"] == REMOTE
    assert remote["sut_details"]["protocol"] == "json"
    assert any("no binary_tensor_data extension" in note for note in remote["run_notes"]), \
        remote["run_notes"]


def test_the_binary_protocol_against_mlserver_fails_with_the_servers_answer(
        demo_mlserver, demo_assets: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--protocol binary` forced against a server without the extension: a clear
    one-line error (exit 1) naming the fix, before any LoadGen test, never an accuracy."""
    from mlperf_pilot.cli.main import main

    code = main(["run", "--model", DEMO, "--dataset-path", str(demo_assets[1]),
                 "--scenario", "Offline", "--mode", "accuracy", "--endpoint", demo_mlserver.url,
                 "--remote-model", REMOTE, "--protocol", "binary",
                 "--results-dir", str(tmp_path), "--json"])
    out, _ = capsys.readouterr()
    assert code == 1
    error = json.loads(out)["error"]
    assert error["type"] == "SutError"
    assert "--protocol json" in error["hint"]
    assert f"/v2/models/{REMOTE}/infer" in error["message"]
    assert re.search(r"\b(422|500)\b", error["message"]), error


def test_resnet50s_interface_through_mlserver_scores_as_local(
        mlserver, resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The MLPerf resnet50 interface (``input_tensor:0`` -> ``ArgMax:0`` INT64 and
    ``softmax_tensor:0``) on a tiny real model, under the catalog's own name. MLServer's
    NumpyCodec answers a 1-D output ``[N]`` as ``[N, 1]`` (its metadata says ``[-1]``);
    the client still decodes every sample as the local SUT does."""
    server = mlserver(resnet50_model, name="resnet50", intra_op_threads=2,
                      run_in_thread=True)
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        outputs = client.get("/v2/models/resnet50").json()["outputs"]
    assert outputs == [{"name": "ArgMax:0", "datatype": "INT64", "shape": [-1]},
                       {"name": "softmax_tensor:0", "datatype": "FP32", "shape": [-1, 1001]}]
    batch = np.zeros((2, 3, 224, 224), dtype=np.float32)
    body, headers = protocol.encode_request([("input_tensor:0", batch)], outputs=["ArgMax:0"],
                                            binary_inputs=False, binary_outputs=False)
    answer = protocol.decode_response(_infer_at(server.url, "resnet50", body, headers), None)
    assert answer.output("ArgMax:0").shape == (2, 1)
    common = ("--model", "resnet50", "--dataset-path", str(colour_imagenet),
              "--scenario", "Offline", "--mode", "accuracy")
    local = _run(capsys, *common, "--model-path", str(resnet50_model),
                 "--results-dir", str(tmp_path / "local"))
    remote = _run(capsys, *common, "--endpoint", server.url, "--protocol", "json",
                  "--results-dir", str(tmp_path / "remote"))
    assert remote["status"] == "VALID" and remote["samples_failed"] == 0, remote["reasons"]
    assert remote["accuracy"]["text"] == local["accuracy"]["text"]
    assert remote["accuracy"]["value"] == 100.0  # every colour photo is labelled right

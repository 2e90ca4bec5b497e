"""`mlperf-pilot serve`, the real server: a subprocess on 127.0.0.1 (free port, stopped
by its PID) serving tiny real ONNX models through onnxruntime, spoken to over real HTTP.

Four servers: the colour classifier (routes, JSON and binary infer against the local
backend, batching, bad payloads), one with a token and a 1 MiB body limit, one over a
model that fails at run time for blue images and waits up to 2 s for a batch to fill (a
slow request for the SIGTERM drain), and the null backend (its outputs are zeros)."""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlperf_pilot.backends.load import load_model
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.cli.main import main
from mlperf_pilot.oip.protocol import (
    HEADER_LENGTH,
    decode_response,
    encode_request,
    header_length_of,
)
from servers.oip_server import OipServer, oip_server, start_oip_server

MODEL = "efficientnet-lite0-demo"
SHAPE = (3, 224, 224)


def _images(count: int, colour: int | None = None, seed: int = 0) -> np.ndarray:
    """``count`` inputs; with ``colour`` each one strongest in that channel."""
    rng = np.random.default_rng(seed)
    array = rng.normal(0, 0.1, (count, *SHAPE)).astype(np.float32)
    if colour is not None:
        array[:, colour] += 1.0
    return array


def _infer(client: httpx.Client, server: OipServer, array: np.ndarray, *, binary: bool = True,
           name: str = "input", headers: dict[str, str] | None = None) -> httpx.Response:
    body, wire = encode_request([(name, array)], binary_inputs=binary, binary_outputs=binary)
    return client.post(server.model_url("/infer"), content=body, headers={**wire, **(
        headers or {})})


def _logits(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    decoded = decode_response(response.content, header_length_of(response.headers))
    assert decoded.model_name == MODEL
    return decoded.output("logits")


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["error"]


def _metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(selector) + r"\}" if labels else "")
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} {labels} not in /metrics"
    return float(found.group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, logits_model: Path):
    with oip_server(["--model-path", str(logits_model), "--max-batch-size", "8",
                     "--batch-timeout-us", "40000"],
                    log_dir=tmp_path_factory.mktemp("oip-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def local_backend(logits_model: Path):
    fmt = load_catalog().model(MODEL).format(None)
    backend = load_model("onnxruntime", fmt, logits_model)
    yield backend
    backend.close()


# ------------------------------------------------------------------------------ routes

def test_health_and_metadata_routes(server: OipServer, client: httpx.Client) -> None:
    assert client.get(f"{server.url}/v2/health/live").status_code == 200
    ready = client.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    meta = client.get(f"{server.url}/v2").json()
    assert meta["name"] == "mlperf-pilot" and "binary_tensor_data" in meta["extensions"]
    model = client.get(server.model_url()).json()
    assert model["name"] == MODEL and model["versions"] == ["1"]
    assert model["platform"] == "mlperf-pilot/onnxruntime"
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert model["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]
    assert client.get(server.model_url("/ready")).json() == {"name": MODEL, "ready": True}
    assert client.get(server.model_url("/versions/1")).json() == model
    assert client.get(server.model_url("/versions/1/ready")).status_code == 200


def test_unknown_model_version_and_route_are_404(server: OipServer,
                                                 client: httpx.Client) -> None:
    assert "unknown model 'resnet50'" in _error(
        client.get(f"{server.url}/v2/models/resnet50"), 404)
    assert "unknown model" in _error(client.post(f"{server.url}/v2/models/resnet50/infer",
                                                 content=b"{}"), 404)
    assert "unknown version '2'" in _error(client.get(server.model_url("/versions/2")), 404)
    _error(client.get(f"{server.url}/v2/nothing-here"), 404)


# ------------------------------------------------------------------------------- infer

def test_binary_and_json_infer_answer_what_the_local_backend_does(
        server: OipServer, client: httpx.Client, local_backend) -> None:
    images = _images(3, seed=1)
    expected = local_backend.predict(images)[0]
    binary = _logits(_infer(client, server, images))
    np.testing.assert_array_equal(binary, expected)
    as_json = _infer(client, server, images, binary=False)
    assert as_json.headers["content-type"].startswith("application/json")
    assert HEADER_LENGTH.lower() not in as_json.headers
    np.testing.assert_allclose(_logits(as_json), expected, rtol=1e-6)
    # the version path answers the same
    body, headers = encode_request([("input", images)])
    versioned = client.post(server.model_url("/versions/1/infer"), content=body,
                            headers=headers)
    np.testing.assert_array_equal(_logits(versioned), expected)


def test_requested_outputs_and_request_id_come_back(server: OipServer,
                                                    client: httpx.Client) -> None:
    body, headers = encode_request([("input", _images(1, colour=2))], outputs=["logits"],
                                   binary_outputs=False, request_id="r-7")
    response = client.post(server.model_url("/infer"), content=body, headers=headers)
    assert response.status_code == 200
    decoded = decode_response(response.content, header_length_of(response.headers))
    assert decoded.id == "r-7" and decoded.model_version == "1"
    assert int(decoded.output("logits").argmax()) == 2
    body, headers = encode_request([("input", _images(1))], outputs=["scores"])
    message = _error(client.post(server.model_url("/infer"), content=body, headers=headers),
                     400)
    assert "output tensor 'scores'" in message


def test_a_request_larger_than_the_batch_is_split_and_joined(
        server: OipServer, client: httpx.Client, local_backend) -> None:
    images = _images(19, seed=2)  # max batch 8: chunks of 8, 8, 3
    np.testing.assert_array_equal(_logits(_infer(client, server, images)),
                                  local_backend.predict(images)[0])


def test_concurrent_requests_are_batched_together(server: OipServer,
                                                  client: httpx.Client) -> None:
    before = client.get(f"{server.url}/metrics").text
    combined_before = (_metric(before, "mlperf_pilot_batch_requests_count")
                       - _metric(before, "mlperf_pilot_batch_requests_bucket", le="1.0"))
    colours = [n % 3 for n in range(8)]
    barrier = threading.Barrier(len(colours))

    def one(colour: int) -> int:
        with httpx.Client(timeout=30) as own:
            barrier.wait()
            return int(_logits(_infer(own, server, _images(1, colour, seed=colour))).argmax())

    with ThreadPoolExecutor(len(colours)) as pool:
        answers = list(pool.map(one, colours))
    assert answers == colours  # each request got its own row back
    after = client.get(f"{server.url}/metrics").text
    combined = (_metric(after, "mlperf_pilot_batch_requests_count")
                - _metric(after, "mlperf_pilot_batch_requests_bucket", le="1.0"))
    assert combined > combined_before  # some backend call served several requests
    assert _metric(after, "mlperf_pilot_batch_size_bucket", le="+Inf") > _metric(
        after, "mlperf_pilot_batch_size_bucket", le="1.0")
    assert _metric(after, "mlperf_pilot_requests_total", route="/v2/models/{name}/infer",
                   status="200") >= len(colours)
    assert "mlperf_pilot_queue_seconds_count" in after
    assert "mlperf_pilot_inference_seconds_count" in after


# ------------------------------------------------------------------------ bad payloads

def test_bad_payloads_are_400_naming_the_tensor(server: OipServer,
                                                client: httpx.Client) -> None:
    url = server.model_url("/infer")
    assert "input tensor 'pixels'" in _error(
        _infer(client, server, _images(1), name="pixels"), 400)
    assert "input tensor 'input' has shape [1, 3, 224, 200]" in _error(
        _infer(client, server, _images(1)[..., :200]), 400)
    assert "input tensor 'input' is FP64" in _error(
        _infer(client, server, _images(1).astype(np.float64)), 400)
    assert "JSON" in _error(client.post(url, content=b'{"inputs": [',
                                        headers={"Content-Type": "application/json"}), 400)
    body, headers = encode_request([("input", _images(1))])
    too_long = dict(headers, **{HEADER_LENGTH: str(len(body) + 10)})
    assert HEADER_LENGTH in _error(client.post(url, content=body, headers=too_long), 400)
    short = dict(headers, **{HEADER_LENGTH: str(int(headers[HEADER_LENGTH]) - 5)})
    _error(client.post(url, content=body, headers=short), 400)
    # binary data shorter than the shape says
    assert "input tensor 'input'" in _error(client.post(url, content=body[:-4],
                                                        headers=headers), 400)
    assert HEADER_LENGTH in _error(client.post(url, content=body, headers=dict(
        headers, **{HEADER_LENGTH: "many"})), 400)


# ------------------------------------------------------------------------ auth, limits

def test_token_and_body_limit(tmp_path: Path, logits_model: Path) -> None:
    secret = "s3cret-token-for-the-test"
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    with oip_server(["--model-path", str(logits_model), "--token-file", str(token_file),
                     "--max-body-mb", "1"], log_dir=tmp_path) as guarded, \
            httpx.Client(timeout=30) as client:
        cmdline = Path(f"/proc/{guarded.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline
        assert client.get(f"{guarded.url}/v2/health/ready").status_code == 200  # open
        assert _error(client.get(guarded.model_url()), 401)
        assert client.get(guarded.model_url()).headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer not-it"}
        _error(_infer(client, guarded, _images(1), headers=wrong), 401)
        _error(client.get(f"{guarded.url}/metrics", headers=wrong), 401)
        right = {"Authorization": f"Bearer {secret}"}
        assert client.get(guarded.model_url(), headers=right).status_code == 200
        _logits(_infer(client, guarded, _images(1), headers=right))
        # 2 x 602 KB is over 1 MiB: refused before inference; 1 image fits
        assert "limit" in _error(_infer(client, guarded, _images(2), headers=right), 413)

        def chunked():  # no Content-Length: the limit holds while reading
            body, _ = encode_request([("input", _images(2))])
            for start in range(0, len(body), 65536):
                yield body[start:start + 65536]

        _, headers = encode_request([("input", _images(2))])
        streamed = client.post(guarded.model_url("/infer"), content=chunked(),
                               headers={**headers, **right})
        _error(streamed, 413)
        metrics = client.get(f"{guarded.url}/metrics", headers=right).text
        assert _metric(metrics, "mlperf_pilot_requests_total", route="/v2/models/{name}",
                       status="401") >= 1
    assert secret not in guarded.log_text()


def test_token_from_the_environment(tmp_path: Path, logits_model: Path) -> None:
    with oip_server(["--model-path", str(logits_model), "--backend", "null"],
                    log_dir=tmp_path, token="from-env") as guarded, \
            httpx.Client(timeout=30) as client:
        assert "bearer token required" in guarded.log_text()
        _error(client.get(guarded.model_url()), 401)
        response = _infer(client, guarded, _images(4),
                          headers={"Authorization": "Bearer from-env"})
        assert response.status_code == 200
        # the null backend: zeros of shape (N, 1), at once
        decoded = decode_response(response.content, header_length_of(response.headers))
        np.testing.assert_array_equal(decoded.output("logits"), np.zeros((4, 1), np.float32))


# ------------------------------------------------------------- failures and the drain

def test_backend_failure_is_500_and_sigterm_drains(tmp_path: Path, failing_model: Path
                                                   ) -> None:
    server = start_oip_server(["--model-path", str(failing_model), "--max-batch-size", "4",
                               "--batch-timeout-us", "2000000"], log_dir=tmp_path)
    try:
        with httpx.Client(timeout=30) as client:
            # a full batch runs at once: blue images make onnxruntime fail
            message = _error(_infer(client, server, _images(4, colour=2)), 500)
            assert message.startswith("inference failed:") and "Gather" in message
            # the failure ends with its batch: the next one is answered
            answer = _logits(_infer(client, server, _images(4, colour=0)))
            assert list(answer.argmax(axis=1)) == [0, 0, 0, 0]
            metrics = client.get(f"{server.url}/metrics").text
            assert _metric(metrics, "mlperf_pilot_inference_failures_total") == 1
            # one sample waits up to 2 s for its batch to fill: in flight at SIGTERM
            result: dict[str, object] = {}

            def slow() -> None:
                started = time.monotonic()
                result["response"] = _infer(client, server, _images(1, colour=1))
                result["seconds"] = time.monotonic() - started

            thread = threading.Thread(target=slow)
            thread.start()
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            thread.join(20)
            response = result["response"]
            assert isinstance(response, httpx.Response)
            assert int(_logits(response).argmax()) == 1
            assert result["seconds"] > 1.0  # it did wait for the batch timeout
        assert server.process.wait(timeout=20) == 0
        assert "stopped on SIGTERM" in server.log_text()
    finally:
        server.stop(signal.SIGKILL, timeout_s=5)


# ------------------------------------------------------------------------ config errors

def test_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", "no-such-model", "--port", "0"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["serve", "--model-path", str(tmp_path / "missing.onnx"), "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--token-file", str(tmp_path / "none"), "--backend", "null",
                 "--port", "0"]) == 2
    assert "token file" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--backend", "null", "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_without_the_serve_extra_the_fix_is_named(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["serve", "--backend", "null", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "uvicorn is not installed" in err and "pip install 'mlperf-pilot[serve]'" in err

"""The oip SUT kind's pieces without a model server: its config and flags, the client's
translation of failures (real sockets: a refused port, a listener that never answers,
a server that drops the connection; httpx's injected MockTransport for the status
codes and bodies of an OIP server, encoded by the shared codec), the token's sources,
and the metadata check against the card format."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from mlperf_pilot.catalog.loader import load_catalog
from mlperf_pilot.config import OipSutConfig, RunSpec, Scenario, build_run_spec
from mlperf_pilot.config.sut import OIP_CONCURRENCY
from mlperf_pilot.errors import ConfigError, SutConnectionError, SutError, SutTimeoutError
from mlperf_pilot.oip import protocol
from mlperf_pilot.oip.client import OipClient, read_token
from mlperf_pilot.oip.connections import ConnectionFailed
from mlperf_pilot.sut.oip_kind import OipKind, check_metadata

DEMO = "efficientnet-lite0-demo"


# ------------------------------------------------------------------------ the config


def test_endpoint_implies_the_oip_kind_and_is_normalised() -> None:
    spec = build_run_spec([{"sut": {"endpoint": "http://127.0.0.1:8000/"}}])
    assert isinstance(spec.sut, OipSutConfig)
    assert spec.sut.endpoint == "http://127.0.0.1:8000"
    assert spec.sut.default_system_name() == "oip-127.0.0.1"
    prefixed = OipSutConfig(endpoint="https://models.example.org/serving/")
    assert prefixed.endpoint == "https://models.example.org/serving"
    assert prefixed.default_system_name() == "oip-models.example.org"


@pytest.mark.parametrize(("endpoint", "words"), [
    ("ftp://host", "http:// or https://"),
    ("127.0.0.1:8000", "http:// or https://"),
    ("http://", "with a host"),
    ("http://host:99999", "not a URL"),
    ("http://host/?q=1", "query"),
    ("http://user:secret@host", "credentials"),
])
def test_bad_endpoints_are_one_line_config_errors(endpoint: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"sut": {"endpoint": endpoint}}])
    assert "sut.endpoint" in info.value.message and words in info.value.message
    assert "\n" not in info.value.message
    assert "--endpoint" in (info.value.hint or "")


def test_endpoint_with_another_kind_names_the_kind_it_belongs_to() -> None:
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"sut": {"kind": "local", "endpoint": "http://127.0.0.1:8000"}}])
    assert "sut.endpoint" in info.value.message
    assert info.value.hint == "sut.endpoint is a setting of --sut oip: leave it out, or " \
        "use --sut oip"
    with pytest.raises(ConfigError) as local:  # and a local setting given to a server
        build_run_spec([{"sut": {"endpoint": "http://127.0.0.1:8000", "threads": 2}}])
    assert "--sut local" in (local.value.hint or "")


def test_concurrency_is_the_batchers_workers() -> None:
    config = OipSutConfig(endpoint="http://h:1")
    for scenario, expected in OIP_CONCURRENCY.items():
        assert config.layout(scenario, 2, parallel=True) == (expected, 0)
    assert OipSutConfig(endpoint="http://h:1", concurrency=6).layout(
        Scenario.SINGLE_STREAM, 2, parallel=True) == (6, 0)
    assert OipSutConfig(endpoint="http://h:1", workers=3).layout(
        Scenario.SERVER, 2, parallel=True) == (3, 0)
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"sut": {"endpoint": "http://h:1", "workers": 2, "concurrency": 3}}])
    assert "same thing" in info.value.message
    resolved = OipKind.scenario_config_of(config, Scenario.SERVER, 2, True)
    assert (resolved.workers, resolved.concurrency) == (4, 4)  # type: ignore[attr-defined]


def test_no_token_value_is_a_setting() -> None:
    assert "token" not in OipSutConfig.model_fields  # only a file's path
    with pytest.raises(ConfigError):
        build_run_spec([{"sut": {"endpoint": "http://h:1", "token": "secret"}}])


def test_plan_needs_an_endpoint_and_chooses_the_card_format(tmp_path: Path) -> None:
    catalog = load_catalog()
    card = catalog.model(DEMO)
    with pytest.raises(ConfigError) as info:
        OipKind.plan(RunSpec(sut=OipSutConfig()), card, catalog)
    assert "--endpoint" in (info.value.hint or "")
    spec = RunSpec(sut=OipSutConfig(endpoint="http://127.0.0.1:9", model_format="pytorch"))
    plan = OipKind.plan(spec, card, catalog)
    assert plan.fmt.id == "pytorch" and plan.system == "oip-127.0.0.1"
    assert plan.details["remote_model"] == DEMO
    missing = RunSpec(sut=OipSutConfig(endpoint="http://h:1", token_file=tmp_path / "no"))
    with pytest.raises(ConfigError) as token:
        OipKind.plan(missing, card, catalog)
    assert "token file" in token.value.message


# ------------------------------------------------------------------------- the token


def test_token_comes_from_the_file_else_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPERF_PILOT_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("MLPERF_PILOT_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    file = tmp_path / "token"
    file.write_text("  from-file\n")
    assert read_token(file) == "from-file"
    file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(file)
    with pytest.raises(ConfigError, match="cannot be read"):
        read_token(tmp_path / "absent")


# -------------------------------------------------- failures on real sockets (no server)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_a_sut_connection_error() -> None:
    port = _free_port()
    client = OipClient(f"http://127.0.0.1:{port}", model="m", timeout_s=2)
    with client, pytest.raises(SutConnectionError) as info:
        client.infer([("input", np.zeros((1, 3), np.float32))], ["logits"])
    assert f"POST http://127.0.0.1:{port}/v2/models/m/infer" in info.value.message
    assert "refused" in info.value.message.lower() and "\n" not in info.value.message
    # the inference path runs on the kept http.client connections
    assert isinstance(info.value.__cause__, ConnectionFailed)
    assert isinstance(info.value.__cause__.__cause__, ConnectionRefusedError)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_no_answer_in_time_is_a_sut_timeout_error(silent_listener: int) -> None:
    client = OipClient(f"http://127.0.0.1:{silent_listener}", model="m", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(SutTimeoutError) as info:
        client.infer([("input", np.zeros((1, 3), np.float32))])
    assert time.monotonic() - started < 2.0
    assert "no answer within 200 ms" in info.value.message
    assert "--request-timeout-ms" in (info.value.hint or "")
    client.close()


def test_a_dropped_connection_is_a_sut_connection_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def drop() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()  # no response at all

        thread = threading.Thread(target=drop, daemon=True)
        thread.start()
        client = OipClient(f"http://127.0.0.1:{port}", model="m", timeout_s=5)
        with client, pytest.raises(SutConnectionError) as info:
            client.ready()
        thread.join(5)
    assert "disconnected" in info.value.message.lower()


def _one_shot_server(answers: int, *, then_close: bool) -> tuple[socket.socket, list[int]]:
    """A listener whose thread answers ``answers`` requests of each connection with a
    tiny binary OIP response, closing the connection after them when ``then_close``;
    the list gets each connection's request count."""
    from mlperf_pilot.oip.protocol import encode_response

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    body, headers = encode_response("m", [("logits", np.ones((1, 2), np.float32))],
                                    binary=True)
    head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    answer = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    counts: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            served = 0
            with conn:
                pending = b""
                while served < answers:
                    data = conn.recv(1 << 20)
                    if not data:
                        break
                    pending += data
                    if b"\r\n\r\n" not in pending:
                        continue
                    head_text, _, rest = pending.partition(b"\r\n\r\n")
                    length = int(head_text.lower().split(b"content-length: ")[1]
                                 .split(b"\r\n")[0])
                    if len(rest) < length:
                        continue
                    pending = rest[length:]
                    conn.sendall(answer)
                    served += 1
                if then_close:
                    conn.shutdown(socket.SHUT_RDWR)
            counts.append(served)

    threading.Thread(target=serve, daemon=True).start()
    return listener, counts


def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    listener, counts = _one_shot_server(1, then_close=True)
    port = listener.getsockname()[1]
    with listener, OipClient(f"http://127.0.0.1:{port}", model="m", timeout_s=5) as client:
        for _ in range(3):  # each request after the first finds its kept socket closed
            out = client.infer([("input", np.zeros((1, 3), np.float32))], ["logits"])
            assert out[0].tolist() == [[1.0, 1.0]]
            time.sleep(0.05)
    assert counts[:2] == [1, 1]


def test_the_request_parts_arrive_as_one_body() -> None:
    listener, counts = _one_shot_server(5, then_close=False)
    port = listener.getsockname()[1]
    with listener, OipClient(f"http://127.0.0.1:{port}", model="m", timeout_s=5) as client:
        for _ in range(5):  # one connection kept for all five
            sample = np.arange(3 * 224 * 224, dtype=np.float32).reshape(1, 3, 224, 224)
            assert client.infer([("input", sample)], ["logits"])[0].shape == (1, 2)
    time.sleep(0.1)
    assert counts == [5]


def test_wait_ready_retries_then_names_the_last_cause() -> None:
    client = OipClient(f"http://127.0.0.1:{_free_port()}", model="m", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(SutConnectionError) as info:
        client.wait_ready(0.4)
    took = time.monotonic() - started
    assert 0.35 < took < 2.0
    assert "is not ready after 0.4 s" in info.value.message and "refused" in \
        info.value.message.lower()
    assert "mlperf-pilot serve" in (info.value.hint or "")


# ------------------------------------------ an OIP server's answers (injected transport)

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, **kw: Any) -> OipClient:
    return OipClient("http://oip.test", model="demo", transport=httpx.MockTransport(handler),
                     **kw)


def _echo_server(seen: list[httpx.Request]) -> Handler:
    """An OIP model that answers ``logits`` = the input's row sums, in the encoding
    the request asked for (the codec's server side)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path != "/v2/models/demo/infer":
            return httpx.Response(404, content=protocol.error_body("no such route"))
        decoded = protocol.decode_request(request.content,
                                          protocol.header_length_of(request.headers))
        batch = decoded.input("input")
        sums = batch.reshape(len(batch), -1).sum(axis=1, keepdims=True).astype(np.float32)
        body, headers = protocol.encode_response(
            "demo", [("logits", sums), ("extra", np.zeros(1, np.int64))],
            binary=decoded.wants_binary("logits"), model_version="1")
        return httpx.Response(200, content=body, headers=headers)

    return handle


@pytest.mark.parametrize("wire", ["binary", "json"])
def test_infer_sends_the_batch_and_returns_the_outputs_asked_for(wire: str) -> None:
    seen: list[httpx.Request] = []
    batch = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with _client(_echo_server(seen), protocol=wire, token="s3cret") as client:
        (logits,) = client.infer([("input", batch)], ["logits"])
        assert "s3cret" not in repr(client)
    np.testing.assert_array_equal(logits, batch.reshape(2, -1).sum(axis=1, keepdims=True))
    (request,) = seen
    assert request.headers["authorization"] == "Bearer s3cret"
    binary = protocol.HEADER_LENGTH.lower() in {k.lower() for k in request.headers}
    assert binary is (wire == "binary")
    if wire == "json":
        assert orjson.loads(request.content)["inputs"][0]["data"][:3] == [0.0, 1.0, 2.0]


def _status(status: int, body: bytes) -> Handler:
    return lambda request: httpx.Response(status, content=body)


@pytest.mark.parametrize(("status", "body", "words", "hint"), [
    (400, protocol.error_body("input tensor 'input': shape [1, 3] is not [-1, 3, 224, 224]"
                              "\nsecond line"),
     "400 Bad Request: input tensor 'input': shape [1, 3] is not [-1, 3, 224, 224] second "
     "line", "server's log"),
    (401, protocol.error_body("missing bearer token"), "401 Unauthorized: missing bearer token",
     "--token-file"),
    (404, b'{"detail": "Model demo not found"}', "404 Not Found: Model demo not found",
     "--remote-model"),
    (413, b"too large", "413 Request Entity Too Large: too large", "--max-batch-size"),
    (500, protocol.error_body("the backend raised RuntimeError: boom"),
     "500 Internal Server Error: the backend raised RuntimeError: boom", "server's log"),
])
def test_non_2xx_answers_are_sut_errors_with_the_servers_text(
        status: int, body: bytes, words: str, hint: str) -> None:
    with _client(_status(status, body)) as client, pytest.raises(SutError) as info:
        client.infer([("input", np.zeros((1, 3), np.float32))], ["logits"])
    assert type(info.value) is SutError
    assert info.value.message == f"POST http://oip.test/v2/models/demo/infer: {words}"
    assert hint in (info.value.hint or "")


def test_malformed_answers_and_missing_outputs_are_sut_errors() -> None:
    with _client(_status(200, b"not json")) as client, pytest.raises(SutError) as info:
        client.infer([("input", np.zeros((1, 3), np.float32))])
    assert "malformed answer" in info.value.message
    with _client(_echo_server([])) as client, pytest.raises(SutError) as missing:
        client.infer([("input", np.zeros((1, 3), np.float32))], ["scores"])
    assert "'scores' is not in the response (it has logits, extra)" in missing.value.message


def test_wait_ready_retries_until_the_model_is_ready() -> None:
    answers = iter([503, 200, 503])  # ready: not yet, then yes; the model: not yet

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/health/live":
            return httpx.Response(200)
        return httpx.Response(next(answers, 200))

    with _client(handle) as client:
        client.wait_ready(5.0)
    with _client(_status(401, protocol.error_body("bad token"))) as client:
        started = time.monotonic()
        with pytest.raises(SutError, match="401"):  # a token is not retried
            client.wait_ready(5.0)
        assert time.monotonic() - started < 1.0
    client = _client(lambda r: httpx.Response(200 if "health" in r.url.path else 404))
    with client, pytest.raises(SutError) as info:
        client.wait_ready(0.2)
    assert type(info.value) is SutError  # it answers: reached, but not ready
    assert "its model 'demo' is not ready" in info.value.message
    assert "--remote-model" in (info.value.hint or "")


def test_metadata_routes_are_read_as_json() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2":
            return httpx.Response(200, json={"name": "srv", "version": "1", "extensions": []})
        if request.url.raw_path == b"/v2/models/my%2Fmodel":  # quoted: one path segment
            return httpx.Response(200, json={"name": "my/model", "platform": "onnx"})
        return httpx.Response(200, json=["not", "an", "object"])

    with _client(handle) as client:
        assert client.server_metadata()["name"] == "srv"
        assert client.model_metadata("my/model")["platform"] == "onnx"
        with pytest.raises(SutError, match="not a JSON object"):
            client.model_metadata("other")


# ------------------------------------------------------------------ the metadata check


def _metadata(inputs: list[dict[str, Any]] | None = None,
              outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": DEMO, "platform": "onnxruntime",
        "inputs": inputs if inputs is not None else [
            {"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
        "outputs": outputs if outputs is not None else [
            {"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}],
    }


def test_metadata_that_fits_the_card_passes_and_a_fixed_batch_is_kept() -> None:
    fmt = load_catalog().model(DEMO).format(None)
    assert check_metadata(_metadata(), fmt, DEMO) == (None, ())
    fixed = [{"name": "input", "datatype": "FP32", "shape": [4, 3, 224, 224]}]
    assert check_metadata(_metadata(fixed), fmt, DEMO)[0] == 4
    fixed_batch, notes = check_metadata({"name": DEMO}, fmt, DEMO)
    assert fixed_batch is None and "not checked" in notes[0]


@pytest.mark.parametrize(("inputs", "outputs", "words"), [
    ([{"name": "images", "datatype": "FP32", "shape": [-1, 3, 224, 224]}], None,
     "has no input 'input' (its inputs: images)"),
    ([{"name": "input", "datatype": "FP16", "shape": [-1, 3, 224, 224]}], None,
     "takes input 'input' as FP16, the card's format onnx sends FP32"),
    ([{"name": "input", "datatype": "FP32", "shape": [-1, 3, 256, 256]}], None,
     "takes input 'input' of shape [-1, 3, 256, 256]"),
    ([{"name": "input", "datatype": "FP32", "shape": [-1, 150528]}], None, "of shape"),
    (None, [{"name": "probs", "datatype": "FP32", "shape": [-1, 1000]}],
     "has no output 'logits' (its outputs: probs)"),
])
def test_a_metadata_mismatch_is_one_config_error_naming_the_tensor(
        inputs: Any, outputs: Any, words: str) -> None:
    fmt = load_catalog().model(DEMO).format(None)
    with pytest.raises(ConfigError) as info:
        check_metadata(_metadata(inputs, outputs), fmt, DEMO)
    assert words in info.value.message and "\n" not in info.value.message
    assert info.value.exit_code == 2 and "--model-format" in (info.value.hint or "")


def test_the_predictor_refuses_an_answer_without_one_row_per_sample() -> None:
    from mlperf_pilot.sut.oip import OipPredictor

    def one_row(request: httpx.Request) -> httpx.Response:
        body, headers = protocol.encode_response("demo", [("logits", np.zeros((1, 10),
                                                                              np.float32))])
        return httpx.Response(200, content=body, headers=headers)

    predictor = OipPredictor(_client(one_row), model="demo", input_name="input",
                             input_dtype=np.dtype(np.float32), outputs=["logits"])
    assert predictor.predict(np.zeros((1, 3), np.float64))[0].shape == (1, 10)  # cast, sent
    with pytest.raises(SutError) as info:
        predictor.predict(np.zeros((4, 3), np.float32))
    assert info.value.message == "the server answered output 'logits' with 1 row(s) for a " \
        "batch of 4"
    predictor.close()


def test_auto_protocol_follows_the_servers_extensions():
    from mlperf_pilot.sut.oip_kind import choose_protocol

    ours = {"name": "mlperf-pilot", "extensions": ["binary_tensor_data"]}
    mlserver = {"name": "mlserver", "version": "1.7.1", "extensions": []}
    assert choose_protocol("auto", ours) == ("binary", ())
    chosen, notes = choose_protocol("auto", mlserver)
    assert chosen == "json" and "no binary_tensor_data extension" in notes[0]
    assert choose_protocol("auto", {})[0] == "json"
    # what the user asks is kept, listed or not
    assert choose_protocol("binary", mlserver) == ("binary", ())
    assert choose_protocol("json", ours) == ("json", ())


def test_an_infer_the_server_drops_is_a_sut_connection_error() -> None:
    listener, _ = _one_shot_server(0, then_close=True)  # closes every connection at once
    port = listener.getsockname()[1]
    with listener, OipClient(f"http://127.0.0.1:{port}", model="m", timeout_s=5) as client, \
            pytest.raises(SutConnectionError) as info:
        client.infer([("input", np.zeros((1, 3), np.float32))], ["logits"])
    assert f"POST http://127.0.0.1:{port}/v2/models/m/infer: " in info.value.message
    assert "\n" not in info.value.message and "--endpoint" in (info.value.hint or "")

"""``mlperf-pilot run --sut oip`` against real servers on 127.0.0.1, started and stopped
by their PID: ``mlperf-pilot serve`` (tests/servers/oip_server.py) and, for requests past
the timeout, a deliberately slow OIP server (tests/servers/slow_oip_server.py).

The demo card (efficientnet-lite0-demo) is served from a tiny real ONNX model with its
interface (tests/builders.py) on 16 colour photos, 3 of them labelled wrong, so top-1 is
81.25% and a decoding difference would show. Each LoadGen test is short (300 ms).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builders import make_imagenet_folder
from cli_runner import Cli
from servers.oip_server import OipServer, oip_server, start_oip_server

DEMO = "efficientnet-lite0-demo"
OIP_SYSTEM = "oip-127.0.0.1"
LOCAL_SYSTEM = "onnxruntime-cpu"
FAST = ("--duration-ms", "300")
SLOW_SERVER = Path(__file__).resolve().parents[1] / "servers" / "slow_oip_server.py"
TOKEN = "tok-9f3c1e77d2b84a55"  # what must never land in a file, a log or argv



@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_imagenet_folder(root, 16, wrong_labels=3)
    return root


def _server_env(cache: Path) -> dict[str, str]:
    return dict(os.environ, MLPERF_PILOT_CACHE=str(cache))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, logits_model: Path) -> Iterator[OipServer]:
    """`mlperf-pilot serve` of the demo card over the tiny model, for the module."""
    logs = tmp_path_factory.mktemp("serve")
    with oip_server(["--model", DEMO, "--model-path", str(logits_model)], log_dir=logs,
                    env=_server_env(logs / "cache")) as server:
        yield server


def _record(results: Path, system: str, scenario: str, mode: str) -> dict[str, Any]:
    path = results / system / DEMO / scenario / "records" / f"{mode}.json"
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def _accuracy_txt(results: Path, system: str, scenario: str) -> str:
    return (results / system / DEMO / scenario / "accuracy" / "accuracy.txt").read_text()


def _demo(photos: Path, results: Path, *more: object) -> tuple[object, ...]:
    return ("run", "--model", DEMO, "--dataset-path", photos, "--results-dir", results,
            *FAST, *more)


# ----------------------------------------------------------------------- the happy path


def test_oip_gives_the_local_accuracy_in_both_scenarios_and_records_the_server(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, served: OipServer
) -> None:
    results = tmp_path / "res"
    local = cli(*_demo(photos, results, "--model-path", logits_model))
    assert local.code == 0, local.text[-3000:]
    remote = cli(*_demo(photos, results, "--endpoint", served.url, "--json"))
    assert remote.code == 0, remote.text[-3000:]
    summary = json.loads(remote.out)
    assert [(r["scenario"], r["mode"], r["status"]) for r in summary["records"]] == [
        ("Offline", "accuracy", "VALID"), ("Offline", "performance", "VALID"),
        ("SingleStream", "accuracy", "VALID"), ("SingleStream", "performance", "VALID")]
    for scenario in ("Offline", "SingleStream"):
        text = _accuracy_txt(results, OIP_SYSTEM, scenario)
        assert text == _accuracy_txt(results, LOCAL_SYSTEM, scenario)
        assert text.startswith("accuracy=81.250%, good=13, total=16")
    record = _record(results, OIP_SYSTEM, "Offline", "performance")
    assert record["metric_unit"] == "Samples/s" and record["metric_value"] > 0
    assert record["backend"] == "mlperf-pilot" and record["backend_version"]
    assert record["device_in_use"] == f"remote ({served.url})"
    details = record["sut_details"]
    assert record["sut_kind"] == "oip" and details["endpoint"] == served.url
    assert details["remote_model"] == DEMO and details["protocol"] == "binary"
    assert details["platform"].startswith("mlperf-pilot/") and details["concurrency"] == 2
    single = _record(results, OIP_SYSTEM, "SingleStream", "performance")
    assert single["sut_details"]["concurrency"] == 1 and single["metric_unit"] == "ms"
    spec = json.loads((results / OIP_SYSTEM / DEMO / "Offline" / "run_spec.json").read_text())
    assert spec["resolved"]["model_path"] is None
    assert spec["resolved"]["model_source"] == f"served by {served.url} as {DEMO!r}"


def test_the_json_protocol_and_http2_give_the_same_answers(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path, served: OipServer
) -> None:
    results = tmp_path / "res"
    common = ("--scenario", "Offline", "--mode", "accuracy")
    binary = cli(*_demo(photos, results / "binary", "--endpoint", served.url, *common))
    as_json = cli(*_demo(photos, results / "json", "--endpoint", served.url, "--protocol",
                         "json", "--concurrency", "3", "--http2", *common))
    assert binary.code == 0 and as_json.code == 0, as_json.text[-3000:]
    assert _accuracy_txt(results / "json", OIP_SYSTEM, "Offline") == _accuracy_txt(
        results / "binary", OIP_SYSTEM, "Offline")
    details = _record(results / "json", OIP_SYSTEM, "Offline", "accuracy")["sut_details"]
    assert (details["protocol"], details["concurrency"], details["http2"]) == ("json", 3, 1)


def test_the_server_scenario_runs_several_requests_in_flight(
        cli: Cli, tmp_path: Path, photos: Path, served: OipServer) -> None:
    results = tmp_path / "res"
    result = cli(*_demo(photos, results, "--endpoint", served.url, "--scenario", "Server",
                        "--mode", "performance"))
    assert result.code == 0, result.text[-3000:]
    record = _record(results, OIP_SYSTEM, "Server", "performance")
    assert record["status"] == "VALID" and record["samples_failed"] == 0
    assert record["sut_details"]["concurrency"] == 4 and record["sut_details"]["workers"] == 4
    assert record["loadgen"]["result_validity"] == "VALID"


# ------------------------------------------------------------------------ failure paths


def test_a_server_that_is_down_at_start_is_a_clear_error(
        cli: Cli, tmp_path: Path, photos: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = cli(*_demo(photos, tmp_path / "res", "--endpoint", f"http://127.0.0.1:{port}",
                        "--set", "sut.ready_timeout_s=1"))
    assert result.code == 1, result.text[-3000:]
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.text
    error = result.error_line()
    assert f"the server at http://127.0.0.1:{port} is not ready after 1 s" in error
    assert "refused" in error.lower()
    assert "mlperf-pilot serve" in result.hint_line()
    assert not list((tmp_path / "res").rglob("records/*.json"))  # no LoadGen test ran


def test_wrong_tensor_names_are_one_config_error(
        cli: Cli, tmp_path: Path, photos: Path, served: OipServer) -> None:
    # the resnet50 card sends input_tensor:0 and reads ArgMax:0: not the served model's
    result = cli("run", "--model", "resnet50", "--endpoint", served.url, "--remote-model", DEMO,
                 "--dataset-path", photos, "--results-dir", tmp_path / "res", *FAST)
    assert result.code == 2, result.text[-3000:]
    assert "Traceback" not in result.text
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the server's model {DEMO!r} has no input 'input_tensor:0' (its "
                      "inputs: input); the card's format onnx-opset11 sends 'input_tensor:0'"]
    assert "--model-format" in result.hint_line()


def _start_slow_server(delay_ms: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, str(SLOW_SERVER), "--delay-ms", str(delay_ms)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    assert port.isdigit(), port
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # uvicorn takes the pre-bound socket in a moment
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the slow server did not start")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def test_a_server_slower_than_the_timeout_makes_the_run_invalid(
        cli: Cli, tmp_path: Path, photos: Path) -> None:
    process, url = _start_slow_server(delay_ms=3000)
    try:
        results = tmp_path / "res"
        result = cli(*_demo(photos, results, "--endpoint", url, "--scenario", "Offline",
                            "--mode", "performance", "--request-timeout-ms", "300"))
    finally:
        _stop(process)
    assert result.code == 1, result.text[-3000:]
    assert "Traceback" not in result.text
    record = _record(results, OIP_SYSTEM, "Offline", "performance")
    assert record["status"] == "INVALID" and record["samples_failed"] > 0
    reason = next(r for r in record["reasons"] if "sample(s) failed" in r)
    assert f"SutTimeoutError: POST {url}/v2/models/{DEMO}/infer: no answer within 300 ms" \
        in reason
    assert record["backend"] == "slow-oip-server"
    log_dir = Path(record["log_dir"])
    assert (log_dir / "mlperf_log_summary.txt").is_file()  # LoadGen's logs are kept


def test_a_server_killed_mid_run_makes_the_run_invalid_and_keeps_the_logs(
        tmp_path: Path, photos: Path, logits_model: Path) -> None:
    server = start_oip_server(["--model", DEMO, "--model-path", str(logits_model)],
                              log_dir=tmp_path / "serve",
                              env=_server_env(tmp_path / "serve" / "cache"))
    results = tmp_path / "res"
    scenario = results / OIP_SYSTEM / DEMO / "SingleStream"
    # LoadGen writes into the scenario's staging folder while the test runs
    live = results / OIP_SYSTEM / DEMO / ".SingleStream.staging" / "performance" / "run_1"
    run = subprocess.Popen(
        [sys.executable, "-m", "mlperf_pilot", "run", "--model", DEMO, "--dataset-path",
         str(photos), "--results-dir", str(results), "--endpoint", server.url,
         "--scenario", "SingleStream", "--mode", "performance", "--duration-ms", "1500"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (live / "mlperf_log_detail.txt").exists() and run.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # LoadGen is sending queries
        assert run.poll() is None, "the run ended before the server was killed"
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        out, err = run.communicate(timeout=60)
    finally:
        server.stop(signal.SIGKILL)
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1, (out + err)[-3000:]
    assert "Traceback" not in err
    record = _record(results, OIP_SYSTEM, "SingleStream", "performance")
    assert record["status"] == "INVALID" and record["samples_failed"] > 0
    reason = next(r for r in record["reasons"] if "sample(s) failed" in r)
    assert "SutConnectionError" in reason and f"{server.url}/v2/models/{DEMO}/infer" in reason
    assert (scenario / "performance" / "run_1" / "mlperf_log_summary.txt").is_file()
    assert "INVALID" in out + err


def test_a_token_protected_server_needs_the_token_which_lands_nowhere(
        cli: Cli, tmp_path: Path, photos: Path, logits_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPERF_PILOT_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with oip_server(["--model", DEMO, "--model-path", str(logits_model), "--token-file",
                     str(token_file)], log_dir=tmp_path / "serve",
                    env=_server_env(tmp_path / "serve" / "cache")) as server:
        results = tmp_path / "res"
        common = ("--endpoint", server.url, "--scenario", "Offline")
        refused = cli(*_demo(photos, results / "none", *common, "--mode", "accuracy"))
        assert refused.code == 1, refused.text[-3000:]
        assert "401" in refused.error_line() and "--token-file" in refused.hint_line()
        # relative to the run's folder: the test processes read it as resolved there
        given = cli(*_demo(photos, results / "file", *common, "--token-file", "token"))
        assert given.code == 0, given.text[-3000:]
        with monkeypatch.context() as env:  # the environment variable instead of a file
            env.setenv("MLPERF_PILOT_TOKEN", TOKEN)
            from_env = cli(*_demo(photos, results / "env", *common, "--mode", "accuracy"))
        assert from_env.code == 0, from_env.text[-3000:]
        server_log = server.log_text()
    assert _accuracy_txt(results / "file", OIP_SYSTEM, "Offline").startswith(
        "accuracy=81.250%")
    assert _record(results / "file", OIP_SYSTEM, "Offline", "performance")["status"] == "VALID"
    spec = (results / "file" / OIP_SYSTEM / DEMO / "Offline" / "run_spec.json").read_text()
    assert '"token_file": "token"' in spec  # the file's path is recorded, not its content
    written = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".json") for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    for text in (refused.text, given.text, from_env.text, server_log):
        assert TOKEN not in text

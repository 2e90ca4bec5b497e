"""What a test run of the demo chooses so that every scenario can finish VALID on this
machine (a Server bound from the warm-up, fewer samples per MultiStream query); a valid
run that refuses, before any LoadGen run, a Server bound no machine like this can meet,
and a test run that says so and does not retry it. The demo's card with tiny real ONNX
models (tests/builders.py): the choices come from the card (``demo: true``) and the
warm-up, not from the model's weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builders import make_slow_classifier
from mlperf_pilot.cli.main import main

DEMO = "efficientnet-lite0-demo"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_test_run_of_the_demo_picks_a_server_bound_it_can_meet(
    capsys: pytest.CaptureFixture[str], colour_imagenet: Path, logits_model: Path,
    tmp_path: Path,
) -> None:
    code, out, err = run_cli(
        capsys, "run", "--model", DEMO, "--model-path", str(logits_model),
        "--dataset-path", str(colour_imagenet), "--count", "8",
        "--scenario", "Server,MultiStream", "--mode", "performance", "--duration-ms", "300",
        "--results-dir", str(tmp_path), "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    statuses = {(r["scenario"], r["mode"]): r["status"] for r in payload["records"]}
    assert statuses == {("Server", "performance"): "VALID",
                        ("MultiStream", "performance"): "VALID"}
    # the note says which bound, from what, and what valid mode uses instead
    (note,) = [n for n in payload["notes"] if n.startswith("Server: latency bound")]
    bound = int(re.search(r"latency bound (\d+) ms", note).group(1))
    assert "for this test run" in note and "demo model" in note
    assert "valid mode keeps resnet50's 15 ms" in note
    user_conf = (tmp_path / "onnxruntime-cpu" / DEMO / "Server" / "user.conf").read_text()
    assert f"resnet50.Server.target_latency = {bound}\n" in user_conf
    assert not any("rerun" in n for n in payload["notes"])  # VALID the first time


def test_a_valid_run_refuses_an_unreachable_server_bound_before_any_loadgen_run(
    capsys: pytest.CaptureFixture[str], colour_imagenet: Path, tmp_path: Path,
) -> None:
    # a model that takes milliseconds per inference against a 1 ms bound
    model = make_slow_classifier(tmp_path / "slow.onnx")
    results = tmp_path / "results"
    code, out, err = run_cli(
        capsys, "run", "--model", DEMO, "--model-path", str(model),
        "--dataset-path", str(colour_imagenet), "--count", "8", "--execution-mode", "valid",
        "--scenario", "Offline,Server", "--set", "loadgen.target_latency_ms=1",
        "--results-dir", str(results),
    )
    assert code == 2, err
    assert "error: Server latency bound 1 ms is out of reach on this machine" in err
    assert "one inference takes" in err and "leaves no room for queueing" in err
    assert "hint: leave Server out (--scenario Offline,SingleStream,MultiStream)" in err
    assert "--set loadgen.target_latency_ms=N" in err
    # refused up front: not even the Offline scenario ran
    model_dir = results / "onnxruntime-cpu" / DEMO
    assert not list(model_dir.rglob("*.json")) and not list(model_dir.rglob("user.conf"))
    assert "mlperf-pilot results" not in out


def test_a_test_run_with_an_unreachable_bound_says_so_and_does_not_retry(
    capsys: pytest.CaptureFixture[str], colour_imagenet: Path, tmp_path: Path,
) -> None:
    model = make_slow_classifier(tmp_path / "slow.onnx")
    code, out, err = run_cli(
        capsys, "run", "--model", DEMO, "--model-path", str(model),
        "--dataset-path", str(colour_imagenet), "--count", "8", "--scenario", "Server",
        "--mode", "performance", "--duration-ms", "300", "--target-qps", "400",
        "--set", "loadgen.target_latency_ms=1", "--results-dir", str(tmp_path / "r"), "--json",
    )
    payload = json.loads(out)
    notes = payload["notes"]
    (before,) = [n for n in notes if n.startswith("Server latency bound 1 ms is out of reach")]
    assert "this test run's Server result cannot be VALID" in before
    assert [r["status"] for r in payload["records"]] == ["INVALID"]
    assert any(n.startswith("Server: not rerun at a lower QPS") for n in notes)
    assert not any("rerun 1" in n for n in notes)
    assert code == 1, err

"""The CLI as a user runs it: exit codes, one-line errors, tables, JSON, cache commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_imagenet_folder
from mlperf_pilot.cli.main import main

FAST = ["--duration-ms", "300"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_the_table_and_where_results_went(
    capsys: pytest.CaptureFixture[str], colour_imagenet: Path, resnet50_model: Path,
    tmp_path: Path,
) -> None:
    code, out, err = run_cli(
        capsys, "run", "--model", "resnet50", "--model-path", str(resnet50_model),
        "--dataset-path", str(colour_imagenet), "--scenario", "Offline", "--mode", "both",
        "--results-dir", str(tmp_path), *FAST,
    )
    assert code == 0, err
    assert "mlperf-pilot results" in out
    for cell in ("resnet50", "onnxruntime", "cpu", "Offline", "accuracy", "performance",
                 "VALID", "100.000% top1", "Samples/s"):
        assert cell in out, cell
    assert "TestScenario.Offline qps=" in out
    assert f"Results written to {tmp_path / 'onnxruntime-cpu'}" in out.replace("\n", "")


def test_run_json_summary(capsys: pytest.CaptureFixture[str], colour_imagenet: Path,
                          resnet50_model: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(
        capsys, "run", "--model", "resnet50", "--model-path", str(resnet50_model),
        "--dataset-path", str(colour_imagenet), "--scenario", "SingleStream",
        "--mode", "performance", "--results-dir", str(tmp_path), "--json", *FAST,
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["ok"] is True and payload["system"] == "onnxruntime-cpu"
    (record,) = payload["records"]
    assert record["scenario"] == "SingleStream" and record["metric_unit"] == "ms"
    assert record["metric_value"] > 0 and record["status"] == "VALID"


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (["run", "--model", "resnet5"], "unknown model 'resnet5'", "resnet50"),
        (["run", "--backend", "tensorflw"], "unknown backend 'tensorflw'", "onnxruntime"),
        (["run", "--set", "sut.max_batch_size=0"], "sut.max_batch_size", None),
        (["run", "--scenario", "Offlin"], "unknown scenario", "SingleStream"),
        (["run", "--model", "resnet50", "--model-path", "/nonexistent/resnet50_v1.onnx",
          "--dataset-path", "/tmp"], "does not exist", "--model-path"),
        (["run", "--set", "nonsense=1"], "unknown setting 'nonsense'", "valid keys"),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str, hint: str | None
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and message in lines[0]
    if hint:
        assert lines[1].startswith("hint: ") and hint in lines[1]
    assert "Traceback" not in err


def test_missing_image_fails_with_the_file_name(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, resnet50_model: Path) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 4)
    (data / "val/img_00002.jpg").unlink()
    code, _, err = run_cli(capsys, "run", "--model", "resnet50", "--model-path",
                           str(resnet50_model), "--dataset-path", str(data),
                           "--results-dir", str(tmp_path / "r"))
    assert code == 2  # a malformed data set is bad input
    assert "img_00002.jpg" in err and "Traceback" not in err


def test_cuda_without_cuda(capsys: pytest.CaptureFixture[str], colour_imagenet: Path,
                           logits_model: Path, tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(capsys, "run", "--model-path", str(logits_model), "--dataset-path",
                           str(colour_imagenet), "--device", "gpu", "--results-dir", str(tmp_path))
    assert code == 2
    assert "CUDA provider" in err and "onnxruntime-gpu" in err


def test_invalid_run_exits_1_and_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          failing_model: Path) -> None:
    data = tmp_path / "data"
    make_imagenet_folder(data, 6)
    code, out, _ = run_cli(capsys, "run", "--model-path", str(failing_model), "--dataset-path",
                           str(data), "--scenario", "Offline", "--mode", "accuracy",
                           "--max-batch-size", "1", "--results-dir", str(tmp_path / "r"))
    assert code == 1
    assert "INVALID" in out and "sample(s) failed" in out


def test_cache_add_list_path_clear(capsys: pytest.CaptureFixture[str], colour_imagenet: Path,
                                   resnet50_model: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "cache", "add", "imagenet", str(colour_imagenet))
    assert code == 0 and "registered dataset imagenet" in out
    # the card's md5 is the official file's: our tiny model does not match
    code, _, err = run_cli(capsys, "cache", "add", "resnet50", str(resnet50_model))
    assert code == 1 and "checksum mismatch" in err
    code, out, _ = run_cli(capsys, "cache", "add", "resnet50", str(resnet50_model), "--no-verify")
    assert code == 0
    code, out, _ = run_cli(capsys, "cache", "list", "--json")
    names = {(e["name"], e["kind"]) for e in json.loads(out)}
    assert names == {("imagenet", "dataset"), ("resnet50", "model")}
    code, out, _ = run_cli(capsys, "cache", "path", "imagenet")
    assert out.strip() == str(colour_imagenet.resolve())
    # a run finds both registrations without --model-path / --dataset-path
    code, out, err = run_cli(capsys, "run", "--model", "resnet50", "--mode", "accuracy",
                             "--results-dir", str(tmp_path), "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["records"][0]["accuracy"]["value"] == 100.0
    assert "cache add" in payload["dataset_source"]
    code, out, _ = run_cli(capsys, "list", "models", "--json")
    rows = {r["Name"]: r for r in json.loads(out)}
    assert rows["resnet50"]["Local"] == "yours" and rows["mobilenet"]["Local"] == "no"
    code, out, _ = run_cli(capsys, "cache", "clear", "imagenet")
    assert code == 0 and "removed 1 entry" in out
    assert colour_imagenet.is_dir()
    code, _, err = run_cli(capsys, "cache", "path", "imagenet")
    assert code == 2 and "no cache entry named 'imagenet'" in err
    code, out, _ = run_cli(capsys, "cache", "list", "--json")
    assert {e["kind"] for e in json.loads(out)} == {"model", "preprocessed"}
    code, out, _ = run_cli(capsys, "cache", "clear", "--yes")
    assert code == 0 and "removed 2 entries" in out
    assert resnet50_model.is_file()


def test_list_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list", "backends", "--json")
    rows = {r["Backend"]: r for r in json.loads(out)}
    assert rows["onnxruntime"]["Installed"] == "yes"
    assert "cpu" in rows["onnxruntime"]["Usable here"]
    code, out, _ = run_cli(capsys, "list", "datasets")
    assert code == 0 and "imagenet" in out and "demo-imagenet" in out
    code, out, _ = run_cli(capsys, "list", "models")
    assert code == 0 and "retinanet" in out and "efficientnet-lite0-demo" in out


def test_console_script_entry_point(tmp_path: Path) -> None:
    """The installed command itself: --version and a usage error's exit code."""
    env = dict(os.environ)
    exe = Path(sys.executable).with_name("mlperf-pilot")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlperf_pilot"]
    done = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0 and "mlperf-pilot" in done.stdout
    done = subprocess.run([*cmd, "run", "--mode", "sideways"], capture_output=True, text=True,
                          env=env, check=False, cwd=tmp_path)
    assert done.returncode == 2 and "unknown mode 'sideways'" in done.stderr

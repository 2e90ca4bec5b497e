"""From runs to a checked submission, through the CLI."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

from mlperf_pilot.cli.main import main
from submission_trees import build_tree

EXPECTED_SHORT_RUN_ERRORS = {
    # what a short test run on 15 photos cannot satisfy (the official checker says the same)
    "performance.sample-count", "performance.min-duration", "accuracy.dataset",
}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.demo
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ("torch", "efficientnet_lite_pytorch", "skimage", "sklearn")),
    reason="the [demo] extra is not installed",
)
def test_demo_to_a_checked_open_submission(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    results = tmp_path / "results"
    code, out, err = cli(capsys, "run", "--scenario", "SingleStream,MultiStream,Offline",
                         "--compliance", "--duration-ms", "500", "--results-dir",
                         str(results), "--json")
    payload = json.loads(out)
    assert {(c["scenario"], c["test"]) for c in payload["compliance"]} == {
        (s, t) for s in ("SingleStream", "MultiStream", "Offline") for t in ("TEST01", "TEST04")}
    assert all(r["status"] == "VALID" for r in payload["records"]), err
    for check in payload["compliance"]:
        if check["test"] == "TEST01":  # onnxruntime CPU is deterministic
            assert check["accuracy_check"].strip().endswith("TEST PASS")

    out_dir = tmp_path / "submission"
    code, out, err = cli(capsys, "submission", "generate", "--division", "open",
                         "--submitter", "MLPerfPilot", "--results-dir", str(results),
                         "--out", str(out_dir))
    assert code == 1  # the checker runs and finds the short-run limits
    assert "wrote 3 result(s)" in out and "SUMMARY: submission has errors" in out
    root = out_dir / "open" / "MLPerfPilot"
    assert json.loads((root / "model_mapping.json").read_text()) == {
        "efficientnet-lite0-demo": "resnet"}
    scenario = root / "results/onnxruntime-cpu/efficientnet-lite0-demo/MultiStream"
    for name in ("accuracy/accuracy.txt", "performance/run_1/mlperf_log_detail.txt",
                 "TEST01/verify_accuracy.txt", "TEST04/verify_performance.txt",
                 "measurements.json", "user.conf", "README.md"):
        assert (scenario / name).is_file(), name
    assert "mlperf-pilot run --scenario SingleStream,MultiStream,Offline" in (
        scenario / "README.md").read_text()
    assert "hash=" in (scenario / "accuracy/accuracy.txt").read_text()
    assert (scenario / "accuracy/mlperf_log_accuracy.json").stat().st_size < 10 * 1024
    assert (root / "documentation/calibration.md").is_file()
    assert (root / "src/efficientnet-lite0-demo/README.md").is_file()

    code, out, _ = cli(capsys, "submission", "check", str(out_dir), "--json",
                       "--csv", str(out_dir / "summary.csv"))
    report = json.loads(out)
    assert code == 1 and len(report["results"]) == 3
    errors = {f["rule"] for r in report["results"] for f in r["findings"]
              if f["severity"] == "error"}
    assert errors == EXPECTED_SHORT_RUN_ERRORS
    assert (out_dir / "summary.csv").read_text().startswith("Organization,Availability,")

    code, _, err = cli(capsys, "submission", "pack", str(out_dir))
    assert code == 1 and "nothing packed" in err

    code, _, err = cli(capsys, "submission", "generate", "--division", "closed",
                       "--submitter", "MLPerfPilot", "--results-dir", str(results),
                       "--out", str(tmp_path / "closed"))
    assert code == 1
    assert "not the reference model" in err and "--division open" in err


def test_pack_a_tree_that_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "sub")
    code, out, _ = cli(capsys, "submission", "check", str(tree))
    assert code == 0 and "SUMMARY: submission looks OK" in out
    code, out, _ = cli(capsys, "submission", "pack", str(tree), "--out",
                       str(tmp_path / "acme.tar.gz"))
    assert code == 0 and "packed" in out
    with tarfile.open(tmp_path / "acme.tar.gz") as tar:
        names = tar.getnames()
    assert "closed/Acme/systems/box.json" in names
    assert (tmp_path / "acme.tar.gz.sha256").read_text().endswith("acme.tar.gz\n")


def test_system_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    overrides = tmp_path / "over.yaml"
    overrides.write_text("cooling: air\nhost_memory_configuration: 2x 12GB\n")
    out_file = tmp_path / "box.json"
    code, _, err = cli(capsys, "system", "--submitter", "Acme", "--system-name", "Box",
                       "--overrides", str(overrides), "--out", str(out_file))
    assert code == 0 and "wrote" in err
    data = json.loads(out_file.read_text())
    assert data["cooling"] == "air" and data["submitter"] == "Acme"
    code, out, _ = cli(capsys, "system", "--check", str(out_file))
    assert code == 0 and "0 error(s)" in out
    data["system_type"] = "toaster"
    out_file.write_text(json.dumps(data))
    code, out, _ = cli(capsys, "system", "--check", str(out_file))
    assert code == 1 and "[system.type]" in out


def test_check_cli_on_the_shared_tree(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from builders import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    code, out, _ = cli(capsys, "submission", "check", str(SHARED_DATA), "--round", "v5.0",
                       "--csv", str(tmp_path / "s.csv"))
    assert code == 1
    assert "Results=0, NoResults=39" in out
    assert "[performance.min-duration]" in out and "-> run with --execution-mode valid" in out

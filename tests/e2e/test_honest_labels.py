"""Honest labels, read where the user reads them: the table, the lines under it, the
notes, ``--json`` and the files a run leaves.

A short test-mode run is LoadGen-VALID and not submittable, and says why in units; the
accuracy is shown against the card's closed-division target; a model whose checksum was
never checked is marked unverified; the header names what really runs; compliance
messages give ms and samples/s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import make_imagenet_folder
from cli_runner import Result

FAST = ["--duration-ms", "300"]



def _run(cli: Callable[..., Result], model: Path, data: Path, results: Path,
         *extra: object) -> Result:
    return cli("run", "--model", "resnet50", "--model-path", model, "--dataset-path", data,
               "--results-dir", results, *FAST, *extra)


def test_a_test_run_is_valid_and_says_why_it_is_not_submittable(
    cli: Callable[..., Result], resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
) -> None:
    result = _run(cli, resnet50_model, colour_imagenet, tmp_path / "results",
                  "--scenario", "Offline", "--mode", "both")
    assert result.code == 0, result.err
    out = result.out
    # LoadGen's verdict and submittability, in the table and, with the reasons, below it
    assert "VALID (test run — not submittable)" in out
    assert "Offline performance: VALID (test run — not submittable: " in out
    perf_line = next(line for line in out.splitlines()
                     if line.startswith("Offline performance: VALID"))
    assert "performance_sample_count 24 < 1024" in perf_line
    assert "min duration 0.3 s < 600 s" in perf_line
    assert "Offline accuracy: VALID (test run — not submittable: 24 of 50,000 samples)" in out
    # the accuracy against the card's target (0.99 x 76.46)
    assert "100.000% top1 — meets the closed-division target 75.695%" in out
    # the footer: the way to a submission
    assert ("next: calibrate with `--execution-mode find`, then run `--execution-mode "
            "valid`, then `mlperf-pilot submission generate`") in out
    # a --model-path file was never checked against the catalog's checksum
    assert "note: model unverified: --model-path" in result.err
    assert "`mlperf-pilot cache add resnet50 FILE`" in result.err
    # the header names the modes that run
    assert "Offline x accuracy, performance (test run)" in result.err


def test_json_and_records_carry_the_labels(
    cli: Callable[..., Result], resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    result = _run(cli, resnet50_model, colour_imagenet, results,
                  "--scenario", "SingleStream", "--mode", "both", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    by_mode = {r["mode"]: r for r in payload["records"]}
    perf, acc = by_mode["performance"], by_mode["accuracy"]
    for record in (perf, acc):
        assert record["execution_mode"] == "test"
        assert record["submittable"] is False
        assert record["not_submittable"][0] == "test run"
        assert record["model_verified"] is False
    assert "min duration 0.3 s < 600 s" in perf["not_submittable"]
    assert "performance_sample_count 24 < 1024" in perf["not_submittable"]
    assert "24 of 50,000 samples" in acc["not_submittable"]
    assert acc["accuracy"]["target"] == pytest.approx(75.6954)
    assert acc["accuracy"]["meets_target"] is True
    # the files say the same: the record and the provenance of run_spec.json
    scenario = results / "onnxruntime-cpu" / "resnet50" / "SingleStream"
    record = json.loads((scenario / "records" / "performance.json").read_text())
    assert record["submittable"] is False and record["execution_mode"] == "test"
    spec = json.loads((scenario / "run_spec.json").read_text())
    assert spec["resolved"]["model_verified"] is False


def test_accuracy_below_the_target_is_said_and_stays_valid(
    cli: Callable[..., Result], resnet50_model: Path, tmp_path: Path,
) -> None:
    data = tmp_path / "wrong"
    make_imagenet_folder(data, 12, wrong_labels=12)
    result = _run(cli, resnet50_model, data, tmp_path / "results", "--scenario", "Offline",
                  "--mode", "accuracy")
    assert result.code == 0, result.err  # every sample answered: VALID
    assert "0.000% top1 — below the closed-division target 75.695%" in result.out
    line = next(line for line in result.out.splitlines()
                if line.startswith("Offline accuracy: VALID"))
    assert "12 of 50,000 samples" in line
    assert "top1 0.000% below the closed-division target 75.695%" in line


def test_a_model_added_without_verification_is_marked_unverified(
    cli: Callable[..., Result], resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
) -> None:
    added = cli("cache", "add", "resnet50", resnet50_model, "--no-verify")
    assert added.code == 0, added.err
    results = tmp_path / "results"
    result = cli("run", "--model", "resnet50", "--dataset-path", colour_imagenet,
                 "--scenario", "Offline", "--mode", "performance", "--results-dir", results,
                 "--json", *FAST)
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert any(n.startswith("model unverified: ") and "registered with `cache add`" in n
               for n in payload["notes"]), payload["notes"]
    (record,) = payload["records"]
    assert record["model_verified"] is False
    spec = json.loads((results / "onnxruntime-cpu" / "resnet50" / "Offline" /
                       "run_spec.json").read_text())
    assert spec["resolved"]["model_verified"] is False


def test_find_header_and_footer_name_what_runs_next(
    cli: Callable[..., Result], resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
) -> None:
    result = _run(cli, resnet50_model, colour_imagenet, tmp_path / "results",
                  "--scenario", "Offline", "--execution-mode", "find")
    assert result.code == 0, result.err
    assert "Offline x performance (find run)" in result.err
    assert "accuracy" not in result.err.splitlines()[0]
    assert "VALID (find run — not submittable)" in result.out
    assert ("next: run `--execution-mode valid` (it uses the targets just found), then "
            "`mlperf-pilot submission generate`") in result.out


def test_compliance_header_lists_the_tests_and_messages_give_units(
    cli: Callable[..., Result], resnet50_model: Path, colour_imagenet: Path, tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    first = _run(cli, resnet50_model, colour_imagenet, results, "--scenario", "SingleStream",
                 "--mode", "both")
    assert first.code == 0, first.err
    result = cli("compliance", "TEST04", "--model", "resnet50", "--model-path",
                 resnet50_model, "--dataset-path", colour_imagenet, "--scenario",
                 "SingleStream", "--results-dir", results, *FAST)
    header = result.err.splitlines()[0]
    assert "SingleStream x compliance TEST04 (test run)" in header, header
    record = json.loads((results / "onnxruntime-cpu" / "resnet50" / "SingleStream" /
                         "records" / "TEST04.json").read_text())
    for reason in record["reasons"]:  # e.g. an indicative band on a loaded machine
        if "performance:" in reason:
            assert " ms vs reference " in reason and "e+" not in reason, reason
    # the comparison those reasons quote, from this run's own logs (always, not only
    # when a band was missed): milliseconds, no nanoseconds in exponent notation
    from mlperf_pilot.compliance.run import definitions
    from mlperf_pilot.compliance.verify import verify_performance

    scenario = results / "onnxruntime-cpu" / "resnet50" / "SingleStream"
    summary = verify_performance(
        scenario / "performance" / "run_1" / "mlperf_log_detail.txt",
        scenario / "TEST04" / "performance" / "run_1" / "mlperf_log_detail.txt",
        "TEST04", definitions()["TEST04"]["threshold"]).summary
    assert re.fullmatch(r"test [\d.,]+ ms vs reference [\d.,]+ ms \([+-][\d.]+%\), "
                        r"allowed band [\d.]+%", summary), summary

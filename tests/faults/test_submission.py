"""Submission faults at the CLI: broken accuracy logs under ``submission check``, and
``submission generate`` meeting results that mlperf-pilot's own records mark bad.

The bad results come from a real run (a model whose inferences fail inside onnxruntime,
so its records are INVALID with failed samples); the FAILED and "VALID but with failed
samples" records are that run's records rewritten through the records API, as an
interrupted run or an older version would have left them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import CliResult, assert_clean_error

from builders import make_failing_classifier, make_imagenet_folder
from mlperf_pilot.cli.main import main
from mlperf_pilot.results.records import read_record, write_record
from submission_trees import build_tree, result_dir

Cli = Callable[..., CliResult]
RESULT = "onnxruntime-cpu/efficientnet-lite0-demo/Offline"
GENERATE = ("submission", "generate", "--division", "open", "--submitter", "Acme",
            "--results-dir", "results", "--out", "out")


@pytest.fixture(scope="module")
def failing_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A results folder from a real run whose every inference failed."""
    root = tmp_path_factory.mktemp("failing-run")
    model = make_failing_classifier(root / "failing.onnx")
    make_imagenet_folder(root / "data", 12)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPERF_PILOT_CACHE", str(root / "cache"))
        code = main(["run", "--model-path", str(model), "--dataset-path", str(root / "data"),
                     "--scenario", "Offline", "--duration-ms", "300",
                     "--results-dir", str(root / "results")])
    assert code == 1  # the run itself reports the failures
    yield root / "results"


def _results(tmp_path: Path, source: Path, status: str | None = None, failed: int = 0,
             reasons: tuple[str, ...] = ()) -> Path:
    """The real run's results in tmp_path; with ``status``: both records rewritten."""
    results = tmp_path / "results"
    shutil.copytree(source, results)
    if status is not None:
        for mode in ("accuracy", "performance"):
            path = results / RESULT / "records" / f"{mode}.json"
            record = read_record(path)
            record.status, record.samples_failed, record.reasons = status, failed, list(reasons)
            write_record(record, path)
    return results


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out_logs").exists()


@pytest.mark.parametrize(("case", "status", "failed", "reasons", "said"), [
    ("INVALID with failed samples (the real run)", None, 0, (), "INVALID with"),
    ("FAILED (interrupted)", "FAILED", 0, ("interrupted by SIGINT",), "FAILED (interrupted"),
    ("VALID by LoadGen but 1897 samples failed", "VALID", 1897, (),
     "VALID by LoadGen with 1897 failed sample(s)"),
])
def test_generate_refuses_what_our_records_mark_bad(
        cli: Cli, tmp_path: Path, failing_results: Path, case: str, status: str | None,
        failed: int, reasons: tuple[str, ...], said: str) -> None:
    results = _results(tmp_path, failing_results, status, failed, reasons)
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    result = cli(*GENERATE)
    assert_clean_error(result, 1, cause=RESULT, fix="--include-invalid")
    assert said in result.err.replace("\n", " "), result.err
    assert "nothing written" in result.err
    _nothing_written(tmp_path)
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before  # kept


def test_generate_refuses_a_cut_short_accuracy_log(cli: Cli, tmp_path: Path,
                                                   failing_results: Path) -> None:
    results = _results(tmp_path, failing_results, "VALID", 0)
    log = results / RESULT / "accuracy" / "mlperf_log_accuracy.json"
    text = log.read_text()
    log.write_text(text[: len(text) // 2])
    result = cli(*GENERATE)
    assert_clean_error(result, 1, cause="mlperf_log_accuracy.json", fix="--include-invalid")
    assert "cut short" in result.err
    _nothing_written(tmp_path)


def test_include_invalid_packages_them_marked_and_the_check_refuses_them(
        cli: Cli, tmp_path: Path, failing_results: Path) -> None:
    _results(tmp_path, failing_results)
    result = cli(*GENERATE, "--include-invalid", "--no-check")
    assert result.code == 0, result.text
    assert f"included, marked invalid: {RESULT}" in result.err.replace("\n", " ")
    scenario = tmp_path / "out/open/Acme/results/onnxruntime-cpu/efficientnet-lite0-demo/Offline"
    assert "**Marked invalid**" in (scenario / "README.md").read_text()
    records = json.loads((scenario / "measurements.json").read_text())["mlperf_pilot"]["records"]
    assert records["performance"]["status"] == "INVALID"
    assert records["performance"]["samples_failed"] > 0

    checked = cli("submission", "check", "out")
    assert checked.code == 1 and "Traceback" not in checked.text
    flat = " ".join(checked.out.split())
    assert "[measurements.records] the performance run is INVALID" in flat
    assert "generate without --include-invalid" in flat  # the fix
    packed = cli("submission", "pack", "out")
    assert packed.code == 1 and not (tmp_path / "out.tar.gz").exists()


@pytest.mark.parametrize(("case", "content", "said"), [
    ("truncated", '[\n{ "seq_id" : 0, "qsl_idx" : 7, "data" : "0A0', "cut short"),
    ("not JSON", "<html>502 Bad Gateway</html>\n", "is not JSON"),
    ("empty", "", "is not JSON"),
])
def test_check_detects_a_broken_accuracy_log(cli: Cli, tmp_path: Path, case: str,
                                             content: str, said: str) -> None:
    root = build_tree(tmp_path / "tree")
    log = result_dir(root, "Offline") / "accuracy" / "mlperf_log_accuracy.json"
    log.write_text(content)
    result = cli("submission", "check", str(root), "--round", "v6.1",
                 "--csv", str(root / "summary.csv"))
    assert result.code == 1 and "Traceback" not in result.text, result.text
    lines = [ln for ln in result.out.splitlines() if "[accuracy.log-format]" in ln]
    assert len(lines) == 1 and "mlperf_log_accuracy.json" in lines[0] and said in lines[0]
    assert "-> rerun the accuracy test" in " ".join(result.out.split())  # the fix
    assert "SUMMARY: submission has errors" in result.out
    assert log.read_text() == content  # the checker changes nothing
    rows = (root / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and not any("/Offline/" in r for r in rows[1:])  # header + 2 valid

"""`mlperf-pilot report` from real LoadGen logs: a tiny real ONNX model run through
`mlperf-pilot run` (Offline and SingleStream, accuracy and performance, with and
without LoadGen's trace), the real v5.0 submission tree in ../shared/data adopted with
`results import`, and `report --serve` as a subprocess on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from builders import SHARED_DATA
from mlperf_pilot.cli.main import main
from mlperf_pilot.loadgen.logs import read_result
from mlperf_pilot.report.latencies import TRACE_FILE, latencies_of, read_trace
from mlperf_pilot.results.store import open_store

pytest.importorskip("matplotlib")

QUICK = ["--duration-ms", "300"]
_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _run(model: Path, data: Path, results: Path, *extra: str) -> None:
    code = main(["run", "--model", "resnet50", "--model-path", str(model), "--dataset-path",
                 str(data), "--results-dir", str(results), *QUICK, *extra])
    assert code == 0


@pytest.fixture(scope="module")
def traced_results(tmp_path_factory: pytest.TempPathFactory, colour_imagenet: Path,
                   resnet50_model: Path) -> Path:
    """A results folder with a traced run (Offline + SingleStream x both modes), a
    traced Server performance run and an untraced SingleStream performance run (real
    LoadGen tests in child processes; once for the module: the tests only read it)."""
    root = tmp_path_factory.mktemp("report-runs")
    results = root / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        _run(resnet50_model, colour_imagenet, results, "--scenario", "Offline",
             "--scenario", "SingleStream", "--mode", "both", "--trace")
        _run(resnet50_model, colour_imagenet, results, "--scenario", "Server",
             "--mode", "performance", "--trace")
        _run(resnet50_model, colour_imagenet, results, "--scenario", "SingleStream",
             "--mode", "performance")
    return results


def test_trace_latencies_are_loadgens(traced_results: Path) -> None:
    """The per-sample latencies read from the trace are the ones LoadGen summarised:
    same count, same mean (LoadGen's, truncated to whole ns), same extremes and the
    percentiles among them (Server too, where issuing lags behind scheduling)."""
    tests = open_store(results_dir=traced_results).select(kind="run")
    performance = [t for t in tests if t.record.mode.value == "performance"]
    traced = [t for t in performance if (Path(t.record.log_dir) / TRACE_FILE).is_file()]
    assert {t.record.scenario.value for t in traced} == {"Offline", "SingleStream", "Server"}
    assert len(performance) == len(traced) + 1  # the untraced run keeps no trace
    for test in traced:
        log_dir = Path(test.record.log_dir)
        result = read_result(log_dir)
        times = read_trace(log_dir / TRACE_FILE)
        assert times is not None
        latencies = latencies_of(result, log_dir)
        assert latencies.source == "trace"
        assert latencies.values_ms is not None
        samples = result.query_count * (result.generated_samples_per_query or 1)
        assert len(times) == samples
        assert latencies.values_ms.mean() == pytest.approx(result.mean_latency_ns / 1e6,
                                                           abs=1e-6)
        assert latencies.values_ms.min() == result.min_latency_ns / 1e6
        assert latencies.values_ms.max() == result.max_latency_ns / 1e6
        assert [m.label for m in latencies.marks] == ["p50", "p90", "p95", "p97", "p99",
                                                     "p99.9"]
        # LoadGen's percentile is a sample of the run: within the trace's range, in order
        values = set(latencies.values_ms.tolist())
        for mark in latencies.marks:
            assert mark.ms in values, mark
        headline = [m.label for m in latencies.marks if m.headline]
        assert headline == {"Offline": [], "SingleStream": ["p90"],
                            "Server": ["p99"]}[test.record.scenario.value]


def test_report_of_a_run(cli, traced_results: Path) -> None:
    result = cli("report", "--results-dir", traced_results)
    assert result.code == 0, result.text
    index = Path(result.out.strip().splitlines()[0])
    assert index == (traced_results / "report" / "index.html").resolve()
    page = index.read_text(encoding="utf-8")
    tests = open_store(results_dir=traced_results).select()
    assert len(tests) >= 5  # and an attempt when a performance test was rerun
    for test in tests:  # every test: in the list and a card with its status
        assert f'data-test-id="{test.test_id}"' in page
        assert f'<section class="card" id="test-{test.test_id}"' in page
    assert "Accuracy" in page and "100.000" in page  # the accuracy table
    assert "top1" in page
    # self-contained: no script, no link, no URL; pictures are data: URIs, valid PNGs
    assert "<script" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page
    images = _IMG.findall(page)
    assert len(images) == page.count("<img ")
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    pictures = {p.name for p in (index.parent / "images").iterdir()}
    kinds = re.findall(r'data-kind="([a-z-]+)"', page)
    # traced: latency + throughput each for Offline and SingleStream; the untraced
    # SingleStream run: the summary's percentile points, said so; the SingleStream
    # tests compared (two of them)
    performance = [t for t in tests if t.record.mode.value == "performance"]
    traced = [t for t in performance if (Path(t.record.log_dir) / TRACE_FILE).is_file()]
    assert len(traced) == len(performance) - 1 >= 2
    assert kinds.count("throughput") == len(traced)
    assert kinds.count("latency") == len(performance)
    assert {"compare-metric", "compare-latency"} <= set(kinds)
    assert "compare-metric-singlestream.png" in pictures
    assert len(pictures) == len(images)
    assert "percentile points of LoadGen" in page or "no per-query latencies" in page
    assert "ran without --trace" in page
    assert f"from the trace for {len(traced)} of {len(performance)}" in result.err


def test_report_selection_and_errors(cli, traced_results: Path, tmp_path: Path) -> None:
    tests = open_store(results_dir=traced_results).select()
    chosen = tests[-1].test_id
    out = tmp_path / "one"
    result = cli("report", chosen, "--results-dir", traced_results, "--out", out)
    assert result.code == 0, result.text
    page = (out / "index.html").read_text(encoding="utf-8")
    assert chosen in page
    assert all(t.test_id not in page for t in tests[:-1] if not chosen.startswith(t.test_id))
    assert "1 test<" in page

    result = cli("report", "--results-dir", traced_results, "--last", "2", "--out", out)
    assert result.code == 0
    assert (out / "index.html").read_text(encoding="utf-8").count('class="card"') == 2

    result = cli("report", "--results-dir", traced_results, "--scenario", "MultiStream")
    assert result.code == 1
    assert result.error_line() == (f"error: no stored test matches scenario=MultiStream in "
                                   f"{traced_results / 'results.sqlite'}")
    result = cli("report", "--results-dir", tmp_path / "nothing")
    assert result.code == 1 and "no results store at" in result.error_line()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not here")
def test_report_of_the_v5_submission_tree(cli, tmp_path: Path) -> None:
    """Real LoadGen 5.0-6.0 logs of other tools: no trace, so each latency chart is the
    summary's percentile points, labelled; the tests compared per scenario."""
    store = tmp_path / "v5.sqlite"
    result = cli("results", "import", SHARED_DATA, "--store", store)
    assert result.code == 0, result.text
    out = tmp_path / "v5"
    result = cli("report", "--store", store, "--model", "resnet50", "--out", out)
    assert result.code == 0, result.text
    page = (out / "index.html").read_text(encoding="utf-8")
    tests = open_store(store).select(model="resnet50")
    performance = [t for t in tests if t.record.mode.value == "performance"]
    assert len(performance) >= 10
    for test in tests:
        assert f'data-test-id="{test.test_id}"' in page
    kinds = re.findall(r'data-kind="([a-z-]+)"', page)
    assert kinds.count("latency") == len(performance)
    assert "throughput" not in kinds  # no trace, no QPS over time
    assert {"compare-metric", "compare-latency"} <= set(kinds)
    assert page.count("no per-query data: run with --trace") == 0  # inside the PNGs
    assert "No test here kept LoadGen" in page
    assert "from the trace for 0 of" in result.err
    # the headline metric as LoadGen logged it, on the cards
    first = performance[0].record
    assert f"{first.metric_value:.4g} Samples/s" in page


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_report_serve(traced_results: Path, tmp_path: Path) -> None:
    """`report --serve` in its own process: index.html over 127.0.0.1, then SIGTERM (by
    PID) stops it cleanly (exit 0)."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlperf_pilot", "report", "--results-dir", str(traced_results),
         "--out", str(tmp_path / "served"), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("http://"):
                break
        url = lines[-1]
        assert url == f"http://127.0.0.1:{port}/index.html", (lines, process.stderr.read())
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            body = response.read().decode("utf-8")
        assert body == (tmp_path / "served" / "index.html").read_text(encoding="utf-8")
        assert "mlperf-pilot report" in body
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    err = process.stderr.read()
    assert code == 0, err
    assert "stopped serving (signal 15)" in err

"""The report's pure parts: the trace reader, the latencies and marks, the page's HTML
(escaped, self-contained), the bars, the comparison labels, the missing extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlperf_pilot.errors import MissingDependencyError
from mlperf_pilot.loadgen.logs import LoadGenResult
from mlperf_pilot.report.html import CSP, AccuracyRow, Card, Page, render_page
from mlperf_pilot.report.latencies import TRACE_FILE, latencies_of, read_trace
from mlperf_pilot.report.plots import Picture, require_matplotlib
from mlperf_pilot.vocab import Scenario

PNG_1x1 = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x03"
           b"\x08\x06\x00\x00\x00")


def _sample(seq: int, query: int, ts_us: float, issue_ns: int, complete_ns: int) -> str:
    event = {"name": "Sample", "cat": "default", "ph": "b", "pid": 1, "id": seq,
             "ts": ts_us, "args": {"sample_seq": seq, "query_seq": query, "sample_idx": 0,
                                   "issue_start_ns": issue_ns, "complete_ns": complete_ns}}
    return json.dumps(event, separators=(",", ":")) + ",\n"


def _trace(path: Path, lines: list[str]) -> Path:
    path.write_text('{"traceEvents":[\n' + "".join(lines) + "]}\n", encoding="utf-8")
    return path


def test_read_trace_takes_sample_begin_events_and_skips_a_cut_line(tmp_path: Path) -> None:
    trace = _trace(tmp_path / TRACE_FILE, [
        '{"name":"IssueQuery","ph":"X","pid":1,"tid":1,"ts":1.0,"dur":2.0,"args":{}},\n',
        _sample(0, 0, 1000.0, 500, 1_000_000),
        '{"name":"Sample","cat":"default","ph":"e", "pid":1,"id":0,"ts":2000.5},\n',
        _sample(1, 1, 3000.0, 0, 2_000_000),
        '{"name":"Sample","cat":"default","ph":"b","pid":1,"id":2,"ts":40',  # cut short
    ])
    times = read_trace(trace)
    assert times is not None and len(times) == 2
    assert times.latency_ns.tolist() == [1_000_000.0, 2_000_000.0]  # from scheduling
    assert times.scheduled_s.tolist() == [0.001, 0.003]
    assert times.completed_s.tolist() == pytest.approx([0.002, 0.005])
    assert read_trace(tmp_path / "absent.json") is None
    assert read_trace(_trace(tmp_path / "empty.json", [])) is None


def _result(scenario: Scenario, **fields: object) -> LoadGenResult:
    return LoadGenResult(scenario=scenario, mode="PerformanceOnly", valid=True, **fields)


def test_multistream_latencies_are_per_query_and_marks_are_loadgens(tmp_path: Path) -> None:
    _trace(tmp_path / TRACE_FILE, [_sample(0, 0, 0.0, 0, 3_000_000),
                                   _sample(1, 0, 0.0, 0, 5_000_000),
                                   _sample(2, 1, 9000.0, 0, 4_000_000)])
    result = _result(Scenario.MULTI_STREAM,
                     query_latency_percentiles_ns={"50.00": 4.5e6, "99.00": 5e6},
                     latency_percentiles_ns={"50.00": 1.0},
                     mean_query_latency_ns=4.5e6,
                     effective_settings={"target_latency_percentile": 0.99})
    latencies = latencies_of(result, tmp_path)
    assert latencies.per == "query" and latencies.source == "trace"
    assert latencies.values_ms.tolist() == [4.0, 5.0]  # each query: its last sample
    assert [(m.label, m.ms, m.headline) for m in latencies.marks] == [
        ("p50", 4.5, False), ("p99", 5.0, True)]
    assert latencies.mean_ms == 4.5

    server = latencies_of(_result(Scenario.SERVER, latency_percentiles_ns={"99.90": 2e6},
                                  effective_settings={"target_latency_ns": 15_000_000}),
                          None)
    assert server.source == "summary" and server.values_ms is None
    assert server.bound_ms == 15.0 and server.marks[0].label == "p99.9"


def test_the_page_escapes_and_fetches_nothing() -> None:
    picture = Picture(name="01-x.png", kind="latency", title="t <b>", alt='a "q"',
                      png=PNG_1x1, test_id="id<1>")
    card = Card(test_id="id<1>&", title="m · Offline", status="INVALID",
                headline="1.0 Samples/s", facts=[("command", "run --set x=<y>")],
                reasons=["min duration <not met>"], pictures=[picture])
    page = render_page(Page(title="R & D", generated="now", cards=[card],
                            accuracy=[AccuracyRow("id<1>&", "m", "b", "Offline", "top1",
                                                  75.0, 74.3, True, 10, "acc=75%")]))
    assert "id&lt;1&gt;&amp;" in page and "<1>" not in page
    assert "min duration &lt;not met&gt;" in page and "run --set x=&lt;y&gt;" in page
    assert 'alt="a &quot;q&quot;"' in page and 'width="2" height="3"' in page
    assert f'content="{CSP}"' in page
    assert "<script" not in page and "://" not in page
    assert 'class="status INVALID"' in page and "why INVALID:" in page
    assert "<title>R &amp; D</title>" in page


def test_comparison_labels_are_the_fewest_that_tell_tests_apart() -> None:
    from mlperf_pilot.report.build import _labels
    from mlperf_pilot.results.records import RunRecord

    def test(test_id: str, backend: str, system: str, mode: str = "performance") -> object:
        record = RunRecord(model="m", mlperf_model="m", backend=backend, backend_version=None,
                           device="cpu", device_in_use="cpu", system=system,
                           scenario="Offline", mode=mode, log_dir="/nowhere")
        return type("T", (), {"test_id": test_id, "record": record, "kind": "run",
                              "provenance": {}})()

    tests = [test("a", "onnxruntime", "ort-cpu"), test("b", "openvino", "ov-cpu"),
             test("c", "openvino", "ov-cpu", mode="accuracy")]
    assert _labels(tests) == {"a": "onnxruntime", "b": "openvino"}
    same = _labels([test("a", "x", "s"), test("b", "x", "s")])
    assert same["a"] != same["b"] and all(":" in label for label in same.values())


def test_bars_read_back_what_they_drew() -> None:
    pytest.importorskip("matplotlib")
    from mlperf_pilot.report.bars import bar_figure

    for horizontal in (False, True):
        _, drawn = bar_figure("t", "ms", ["a", "b"], {"p50": [1.5, None], "p90": [2.0, 3.0]},
                              horizontal=horizontal)
        assert drawn == {"p50": [1.5, None], "p90": [2.0, 3.0]}


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError) as caught:
        require_matplotlib()
    assert caught.value.hint == "pip install 'mlperf-pilot[report]'"
    assert "the report's charts" in caught.value.message

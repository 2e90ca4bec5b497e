"""`mlperf-pilot report --sweep`: a real local sweep of a tiny ONNX model
(tests/builders.py) over batch size x threads, then its report: one chart per swept key,
the best configuration per scenario (its point, its `mlperf-pilot run` command, its
metric) and the throughput/latency Pareto front, from the sweep's store."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path

import pytest

from sweeps import write_tiny_sweep

pytest.importorskip("matplotlib")


def test_report_of_a_local_sweep(cli, tmp_path: Path, logits_model: Path,
                                 colour_imagenet: Path) -> None:
    from mlperf_pilot.report.sweep import pareto_front
    from mlperf_pilot.results.store import open_store
    from mlperf_pilot.sweep.state import load_state

    write_tiny_sweep(tmp_path, "tiny-report", logits_model, colour_imagenet,
                     {"sut.max_batch_size": [1, 4], "sut.threads": [1, 2]})
    ran = cli("sweep", "run", "sweep.yaml", "--executor", "local")
    assert ran.code == 0, ran.text
    sweep_id = re.search(r"sweep (tiny-report-\S+):", ran.err).group(1)  # type: ignore[union-attr]
    state = load_state(sweep_id, tmp_path / "results")
    assert [p.status for p in state.points] == ["done"] * 4

    both = cli("report", "--sweep", sweep_id, "some-test-id")
    assert both.code == 2 and "not both" in both.error_line()

    made = cli("report", "--sweep", sweep_id[:16])  # a unique prefix of the id works
    assert made.code == 0, made.text
    index = Path(made.out.strip())
    assert index == (state.folder / "report" / "index.html").resolve()
    page = index.read_text(encoding="utf-8")
    assert f"<title>sweep {sweep_id}</title>" in page

    # one chart per swept key, the other key as its series; a Pareto front
    kinds = re.findall(r'data-picture="([^"]+)" data-kind="(sweep-[a-z]+)"', page)
    assert sorted(kinds) == [("sweep-offline-pareto.png", "sweep-pareto"),
                             ("sweep-offline-sut-max-batch-size.png", "sweep-key"),
                             ("sweep-offline-sut-threads.png", "sweep-key")]
    for name, _ in kinds:
        assert (index.parent / "images" / name).read_bytes().startswith(b"\x89PNG")
    alts = dict(re.findall(r'data-picture="(sweep-[^"]+)"[^>]*><img [^>]*alt="([^"]*)"', page))
    threads_alt = html.unescape(alts["sweep-offline-sut-threads.png"])
    assert "sut.max_batch_size=1:" in threads_alt and "sut.max_batch_size=4:" in threads_alt

    # the best configuration: the VALID point with the most samples/s, as the store says
    with open_store(Path(state.store)) as store:
        tests = {p.id: store.get(p.test_ids[0]) for p in state.points}
    assert all(t.record.status.value == "VALID" for t in tests.values())
    best_id = max(tests, key=lambda pid: tests[pid].record.metric_value or 0.0)
    row = re.search(r'<table class="sweep-best">.*?</table>', page, re.S).group(0)  # type: ignore[union-attr]
    assert row.count("<tr data-point=") == 1
    assert f'<tr data-point="{best_id}"><td>Offline</td>' in row
    best_point = next(p for p in state.points if p.id == best_id)
    assert f"<code>{html.escape(shlex.join(best_point.command))}</code>" in row
    assert shlex.join(best_point.command).startswith("mlperf-pilot run ")
    value = tests[best_id].record.metric_value
    assert f"samples per second {value:.4g} Samples/s (higher is better)" in row

    # the front drawn is the front of the stored numbers
    ids = list(tests)
    pairs = [(tests[i].record.loadgen.samples_per_second,  # type: ignore[union-attr]
              tests[i].record.loadgen.latency_percentiles_ns["99.00"] / 1e6)  # type: ignore[union-attr]
             for i in ids]
    front = [ids[i] for i in pareto_front(pairs)]
    pareto_alt = html.unescape(alts["sweep-offline-pareto.png"])
    on_front = pareto_alt.split("on the front: ")[1].split("; dominated")[0]
    assert re.findall(r"(p\d{3}) \(", on_front) == front
    assert best_id in front  # the most throughput is always on the front

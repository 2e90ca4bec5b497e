"""``mlperf-pilot report``: the pictures and the one HTML page of a selection of tests.

:func:`write_report` is a function of the tests (the store's
:class:`~mlperf_pilot.results.store.StoredTest` values, or anything with ``test_id``,
``kind``, ``record``, ``provenance``) and of the LoadGen logs under each record's
``log_dir``: a card per test (status and why, the headline, what ran it, what a
submission would make of it), for each performance test its latency distribution
(:mod:`.latencies`: per sample from LoadGen's trace when the run kept one, else the
percentile points of LoadGen's summary, said so) and its throughput over time (trace
only), bar charts comparing the tests of a scenario, and the accuracy table. It writes
``index.html`` (self-contained: the pictures are inside it) and the same pictures as
PNG files in ``images/``; it never opens the store.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

from mlperf_pilot.report.html import AccuracyRow, Card, Page, SweepSection, render_page
from mlperf_pilot.report.latencies import TRACE_FILE, Latencies, latencies_of
from mlperf_pilot.report.plots import (
    CompareRow,
    Picture,
    comparison_pictures,
    latency_picture,
    require_matplotlib,
    throughput_picture,
)
from mlperf_pilot.report.tables import StoredTestLike
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.storage import write_text_atomic
from mlperf_pilot.vocab import Mode

INDEX = "index.html"
IMAGES = "images"
# what the comparisons tell tests apart by, in this order (the first that differ)
_DISTINGUISH = (("backend", "backend"), ("device", "device"), ("SUT", "sut_kind"),
                ("memory", "memory"), ("system", "system"), ("model", "model"))


@dataclasses.dataclass(frozen=True)
class Report:
    """What was written: the page, the picture files, and each test's latency source
    (``trace``, ``summary`` or absent for a test without performance numbers)."""

    index: Path
    pictures: list[Path]
    test_ids: list[str]
    latency_sources: dict[str, str]


def write_report(tests: Sequence[StoredTestLike], out: Path, *,
                 title: str = "mlperf-pilot report",
                 sweep: SweepSection | None = None) -> Report:
    """Write ``out/index.html`` and ``out/images/*.png`` for ``tests`` (in that order);
    ``sweep`` (:func:`mlperf_pilot.report.sweep.sweep_section`): the page's sweep section
    above the tests."""
    require_matplotlib()
    from mlperf_pilot import __version__

    out.mkdir(parents=True, exist_ok=True)
    images = out / IMAGES
    images.mkdir(exist_ok=True)
    for stale in images.glob("*.png"):  # pictures of an earlier report in this folder
        stale.unlink()
    cards: list[Card] = []
    sources: dict[str, str] = {}
    compare: list[CompareRow] = []
    labels = _labels(tests)
    for n, test in enumerate(tests, 1):
        card, latencies = _card(test, n)
        cards.append(card)
        if latencies is not None:
            sources[test.test_id] = latencies.source
            compare.append(_compare_row(test.record, labels[test.test_id], latencies))
    comparisons = comparison_pictures(compare)
    written: list[Path] = []
    drawn = [*sweep.pictures, *sweep.fronts] if sweep is not None else []
    for picture in [*drawn, *comparisons, *(p for card in cards for p in card.pictures)]:
        path = images / picture.name
        path.write_bytes(picture.png)
        written.append(path)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    notes = [] if any(s == "trace" for s in sources.values()) or not sources else [
        "No test here kept LoadGen's trace, so the latency charts show the percentile "
        "points LoadGen's summary reports; `mlperf-pilot run --trace` keeps every "
        "sample's latency for the full distribution."]
    page = Page(title=title, generated=f"generated {now} by mlperf-pilot {__version__}",
                cards=cards, comparisons=comparisons, accuracy=_accuracy_rows(tests),
                notes=notes, sweep=sweep)
    index = out / INDEX
    write_text_atomic(index, render_page(page))
    return Report(index=index, pictures=written, test_ids=[t.test_id for t in tests],
                  latency_sources=sources)


def _card(test: StoredTestLike, n: int) -> tuple[Card, Latencies | None]:
    record = test.record
    log_dir = Path(record.log_dir)
    notes: list[str] = []
    pictures: list[Picture] = []
    latencies = None
    performance = record.mode is Mode.PERFORMANCE and record.loadgen is not None
    if not log_dir.is_dir():
        notes.append(f"the log folder {log_dir} is not there any more: the numbers are the "
                     "record's")
    if performance:
        assert record.loadgen is not None
        latencies = latencies_of(record.loadgen, log_dir if log_dir.is_dir() else None)
        stem = f"{n:02d}-{record.scenario.value.lower()}"
        title = f"{record.scenario.value} latency: {record.model} on {_sut(record)}"
        if latencies.marks or latencies.values_ms is not None:
            pictures.append(latency_picture(f"{stem}-latency.png", title, latencies,
                                            test_id=test.test_id,
                                            scenario=record.scenario.value))
        if latencies.times is not None:
            picture = throughput_picture(
                f"{stem}-throughput.png",
                f"{record.scenario.value} throughput over time: {record.model}",
                latencies.times, reported=record.loadgen.metric_value
                if record.loadgen.metric_unit else None,
                unit=record.loadgen.metric_unit, test_id=test.test_id,
                scenario=record.scenario.value)
            if picture is not None:
                pictures.append(picture)
        else:
            notes.append(f"no per-query latencies: {TRACE_FILE} is absent (the test ran "
                         "without --trace); the latency chart shows LoadGen's summary "
                         "percentiles, and there is no throughput-over-time chart")
    card = Card(test_id=test.test_id, title=_title(record), status=record.status.value,
                headline=_headline(record), facts=_facts(test), reasons=list(record.reasons),
                not_submittable=list(record.not_submittable), notes=notes,
                pictures=pictures)
    return card, latencies


def _title(record: RunRecord) -> str:
    return f"{record.model} · {record.scenario.value} · {record.mode.value} · {_sut(record)}"


def _sut(record: RunRecord) -> str:
    return f"{record.backend}/{record.device}"


def _headline(record: RunRecord) -> str:
    if record.mode is Mode.ACCURACY and record.accuracy is not None:
        return record.accuracy.text
    if record.metric_value is not None:
        return f"{record.metric_name or 'result'} {record.metric_value:.4g} " \
               f"{record.metric_unit or ''}".rstrip()
    return "no result"


def _facts(test: StoredTestLike) -> list[tuple[str, str]]:
    record = test.record
    facts = [("kind", test.kind), ("model", f"{record.model} ({record.mlperf_model})"),
             ("scenario · mode", f"{record.scenario.value} · {record.mode.value}")]
    if record.execution_mode is not None:
        facts.append(("execution mode", record.execution_mode.value))
    version = f" {record.backend_version}" if record.backend_version else ""
    facts += [("backend", f"{record.backend}{version}"),
              ("device", f"{record.device} (in use: {record.device_in_use})"),
              ("system", record.system)]
    if record.sut_kind:
        facts.append(("SUT", record.sut_kind))
    memory = _memory(record)
    if memory:
        facts.append(("memory", memory))
    facts.append(("started", record.started.strftime("%Y-%m-%d %H:%M:%S UTC")))
    if record.duration_s is not None:
        facts.append(("duration", f"{record.duration_s:.1f} s"))
    loadgen = record.loadgen
    if loadgen is not None and loadgen.query_count:
        facts.append(("queries", str(loadgen.query_count)))
    if record.accuracy is not None and record.mode is not Mode.ACCURACY:
        facts.append(("accuracy", record.accuracy.text))
    if record.samples_failed:
        facts.append(("samples failed", f"{record.samples_failed} "
                      + ", ".join(f"{k}: {v}" for k, v in record.errors.items())))
    facts.append(("submittable", "yes" if record.submittable else "no"))
    if loadgen is not None and loadgen.loadgen_version:
        facts.append(("LoadGen", loadgen.loadgen_version))
    command = test.provenance.get("command") if isinstance(test.provenance, dict) else None
    if command:
        facts.append(("command", " ".join(command) if isinstance(command, list)
                      else str(command)))
    facts.append(("logs", record.log_dir))
    return facts


def _memory(record: RunRecord) -> str | None:
    value = record.sut_details.get("memory_mb")
    return f"{value} MB" if value not in (None, "") else None


def _attribute(record: RunRecord, key: str) -> str:
    if key == "memory":
        return _memory(record) or ""
    return str(getattr(record, key) or "")


def _labels(tests: Sequence[StoredTestLike]) -> dict[str, str]:
    """Per test, its label in comparisons: the fewest of backend, device, SUT kind,
    memory size, system, model (in that order) that tell it apart from the other
    performance tests of its scenario, else (or also, when still equal) its start."""
    labels: dict[str, str] = {}
    by_scenario: dict[str, list[StoredTestLike]] = {}
    for test in tests:
        if test.record.mode is Mode.PERFORMANCE:
            by_scenario.setdefault(test.record.scenario.value, []).append(test)
    for group in by_scenario.values():
        differing = [key for _, key in _DISTINGUISH
                     if len({_attribute(t.record, key) for t in group}) > 1]
        keys: list[str] = []
        for key in differing:
            keys.append(key)
            if len({tuple(_attribute(t.record, k) for k in keys) for t in group}) == len(group):
                break
        for test in group:
            parts = [_attribute(test.record, key) for key in keys]
            labels[test.test_id] = "\n".join(p for p in parts if p)
        seen: dict[str, int] = {}
        for test in group:
            seen[labels[test.test_id]] = seen.get(labels[test.test_id], 0) + 1
        for test in group:  # still equal: the start time tells them apart
            if seen[labels[test.test_id]] > 1 or not labels[test.test_id]:
                labels[test.test_id] = "\n".join(filter(None, (
                    labels[test.test_id], test.record.started.strftime("%m-%d %H:%M:%S"))))
        counts: dict[str, int] = {}
        for test in group:  # started in the same second: numbered in the order given
            counts[labels[test.test_id]] = counts.get(labels[test.test_id], 0) + 1
        numbered: dict[str, int] = {}
        for test in group:
            label = labels[test.test_id]
            if counts[label] > 1:
                numbered[label] = numbered.get(label, 0) + 1
                labels[test.test_id] = f"{label} #{numbered[label]}"
    return labels


def _compare_row(record: RunRecord, label: str, latencies: Latencies) -> CompareRow:
    tiles = {round(m.percent, 1): m.ms for m in latencies.marks}
    return CompareRow(label=label, scenario=record.scenario.value,
                      metric_name=record.metric_name, metric_value=record.metric_value,
                      metric_unit=record.metric_unit, p50_ms=tiles.get(50.0),
                      p90_ms=tiles.get(90.0), p99_ms=tiles.get(99.0))


def _accuracy_rows(tests: Sequence[StoredTestLike]) -> list[AccuracyRow]:
    rows = []
    for test in tests:
        record, accuracy = test.record, test.record.accuracy
        if record.mode is Mode.ACCURACY and accuracy is not None:
            rows.append(AccuracyRow(
                test_id=test.test_id, model=record.model, backend=_sut(record),
                scenario=record.scenario.value, metric=accuracy.metric,
                value=accuracy.value, target=accuracy.target,
                meets_target=accuracy.meets_target, samples=accuracy.total,
                text=accuracy.text))
    return rows


__all__ = ["IMAGES", "INDEX", "Report", "write_report"]

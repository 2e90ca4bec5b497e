"""report.tables / report.compare / report.export and the CLI's filters, on stored
tests built from the real LoadGen logs of the MLPerf submission tree in ../shared/data
(resnet50 Offline on several systems); the commands themselves are tested end to end in
tests/e2e/test_results_commands.py."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from builders import SHARED_DATA
from mlperf_pilot.cli.filters import TestFilter, parse_since
from mlperf_pilot.loadgen.logs import read_result
from mlperf_pilot.report.compare import (
    DEFAULT_NOISE,
    compare,
    configuration_of,
    noise_of,
)
from mlperf_pilot.report.export import csv_text, json_text, parquet_table
from mlperf_pilot.report.tables import (
    EXPORT_COLUMNS,
    export_row,
    flatten,
    list_rows,
    show_view,
)
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.vocab import Mode, RunStatus, Scenario

RESULTS = SHARED_DATA / "open" / "MLCommons" / "results"
SYSTEMS = [f"gh_ubuntu-latest_x86-reference-cpu-onnxruntime_v{v}-default_config"
           for v in ("1.20.1", "1.21.0", "1.21.1", "1.22.0", "1.22.1", "1.23.0")]
pytestmark = pytest.mark.skipif(not RESULTS.is_dir(), reason=f"{RESULTS} is not here")

SETTINGS = {"model": "resnet50", "results_dir": "results", "scenarios": ["Offline"],
            "sut": {"kind": "local", "max_batch_size": 8, "threads": 0}}


@dataclass(frozen=True)
class Stored:
    """Shaped as results.store.StoredTest."""

    test_id: str
    kind: str
    record: RunRecord
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def real_test(system_dir: str, test_id: str, *, system: str = "ubuntu-ort",
              settings: dict[str, Any] | None = None, **update: Any) -> Stored:
    """A stored test of one real LoadGen performance run of the shared tree."""
    log_dir = RESULTS / system_dir / "resnet50" / "offline" / "performance" / "run_1"
    result = read_result(log_dir)
    version = system_dir.split("_v")[1].split("-")[0]
    record = RunRecord(
        run_id=f"run-{test_id}", model="resnet50",
        mlperf_model="resnet50", backend="onnxruntime", backend_version=version,
        device="cpu", device_in_use="CPUExecutionProvider", system=system,
        scenario=Scenario.OFFLINE, mode=Mode.PERFORMANCE,
        status=RunStatus.VALID if result.valid else RunStatus.INVALID,
        metric_name=result.metric_name, metric_value=result.metric_value,
        metric_unit=result.metric_unit, log_dir=str(log_dir), loadgen=result)
    if update:
        record = record.model_copy(update=update)
    provenance = {"command": f"mlperf-pilot run # {test_id}",
                  "versions": {"python": "3.11.7", "packages": {"onnxruntime": version}}}
    return Stored(test_id, "import", record, dict(settings or SETTINGS), provenance)


@pytest.fixture(scope="module")
def tests() -> list[Stored]:
    return [real_test(system, f"t{index}") for index, system in enumerate(SYSTEMS)]


# ----------------------------------------------------------------------------- noise


def test_noise_is_the_spread_of_the_configurations_valid_tests(tests: list[Stored]) -> None:
    values = [t.record.metric_value for t in tests]
    assert all(v and v > 0 for v in values)
    noise = noise_of(tests[0], tests)
    assert noise.measured and noise.tests == len(tests)
    assert noise.fraction == pytest.approx(max(values) / min(values) - 1)
    assert f"spread of {len(tests)} VALID performance tests" in noise.describe()


def test_too_few_tests_use_the_stated_default(tests: list[Stored]) -> None:
    noise = noise_of(tests[0], tests[:2])
    assert (noise.fraction, noise.tests, noise.measured) == (DEFAULT_NOISE, 2, False)
    assert "default" in noise.describe() and "fewer than 3" in noise.describe()
    # INVALID tests and accuracy tests are not measurements of the noise
    invalid = [real_test(SYSTEMS[i], f"x{i}", status=RunStatus.INVALID) for i in range(3)]
    assert noise_of(tests[0], [tests[0], *invalid]).tests == 1


def test_configuration_ignores_where_files_go_not_what_is_measured(tests: list[Stored]
                                                                   ) -> None:
    moved = real_test(SYSTEMS[0], "m", settings={**SETTINGS, "results_dir": "elsewhere",
                                                 "scenarios": ["Offline", "Server"]})
    assert configuration_of(moved) == configuration_of(tests[0])
    batched = real_test(SYSTEMS[0], "b", settings={**SETTINGS, "sut": {
        **SETTINGS["sut"], "max_batch_size": 1}})
    assert configuration_of(batched) != configuration_of(tests[0])
    other_system = real_test(SYSTEMS[0], "s", system="macos-ort")
    assert configuration_of(other_system) != configuration_of(tests[0])


# --------------------------------------------------------------------------- compare


def test_throughput_regression_beyond_the_noise_is_flagged(tests: list[Stored]) -> None:
    noise = noise_of(tests[0], tests).fraction
    base = tests[0].record.metric_value or 0.0
    # another configuration (batch 1) at half the baseline's throughput
    slow = real_test(SYSTEMS[1], "slow", settings={**SETTINGS, "sut": {
        **SETTINGS["sut"], "max_batch_size": 1}}, metric_value=base / (2 + 2 * noise))
    comparison = compare([tests[0], slow, tests[1]], tests)
    first, flagged, peer = comparison.columns
    assert first.regression is None and first.noise is not None
    assert flagged.regression is True and flagged.ratio == pytest.approx(1 / (2 + 2 * noise))
    assert flagged.worse_by == pytest.approx(1 + 2 * noise)
    # the measured figure (the baseline's, over its 6 tests) over the default of the
    # candidate's configuration (1 test)
    assert flagged.noise is not None and flagged.noise.measured
    assert flagged.noise.fraction == pytest.approx(noise)
    assert peer.regression is False  # two runs of one configuration never flag each other
    assert [c.test_id for c in comparison.regressions] == ["slow"]
    assert [d.key for d in comparison.settings] == ["sut.max_batch_size"]
    versions = {d.key: d.values for d in comparison.versions}
    assert versions["versions.packages.onnxruntime"] == ("1.20.1", "1.21.0", "1.21.0")
    assert "command" not in versions
    assert comparison.percentiles[:2] == ("50.00", "90.00")
    assert comparison.to_json()["regressions"] == ["slow"]


def test_latency_metrics_are_worse_when_higher(tests: list[Stored]) -> None:
    def latency(test_id: str, ms: float) -> Stored:
        return real_test(SYSTEMS[0], test_id, scenario=Scenario.SINGLE_STREAM,
                         metric_name="90th percentile latency (early stopping)",
                         metric_unit="ms", metric_value=ms)

    base, faster, slower = latency("base", 2.0), latency("fast", 1.0), latency("slow", 2.2)
    comparison = compare([base, faster, slower])  # no history: the default noise
    _, fast_column, slow_column = comparison.columns
    assert fast_column.lower_is_better and fast_column.worse_by == pytest.approx(-0.5)
    assert fast_column.regression is False
    assert slow_column.worse_by == pytest.approx(0.1) and slow_column.regression is True
    assert slow_column.noise is not None and slow_column.noise.fraction == DEFAULT_NOISE


def test_other_metrics_are_shown_not_judged(tests: list[Stored]) -> None:
    latency = real_test(SYSTEMS[0], "ss", scenario=Scenario.SINGLE_STREAM, metric_unit="ms",
                        metric_name="90th percentile latency (early stopping)",
                        metric_value=1.0)
    accuracy = real_test(SYSTEMS[0], "acc", mode=Mode.ACCURACY, metric_value=None)
    _, judged_latency, judged_accuracy = compare([tests[0], latency, accuracy]).columns
    assert judged_latency.regression is None and "another metric" in (judged_latency.note or "")
    assert judged_accuracy.regression is None and judged_accuracy.ratio is None


# ------------------------------------------------------------------------ list, show


def test_list_rows_and_view(tests: list[Stored]) -> None:
    rows = list_rows(tests[:2])
    assert [row.test_id for row in rows] == ["t0", "t1"]
    assert rows[0].sut == "local/onnxruntime" and rows[0].metric_unit == "Samples/s"
    assert rows[0].to_json()["started"].endswith("+00:00")
    view = show_view(tests[0])
    titles = [section.title for section in view.sections]
    assert titles == ["test", "verdict", "result", "settings", "provenance", "logs"]
    result = dict(view.sections[2].items)
    assert {"p50", "p90", "p99"} <= set(result) and result["value"].endswith("Samples/s")
    assert dict(view.sections[3].items)["sut.max_batch_size"] == "8"


def test_flatten() -> None:
    assert flatten({"b": {"y": 1, "x": {"z": None}}, "a": [1, 2], "c": {}}) == \
        {"a": [1, 2], "b.x.z": None, "b.y": 1, "c": {}}


# ----------------------------------------------------------------------------- export


def test_csv_and_json_export(tests: list[Stored]) -> None:
    rows = list(csv.DictReader(io.StringIO(csv_text(tests[:3]))))
    assert tuple(rows[0]) == EXPORT_COLUMNS and [r["test_id"] for r in rows] == ["t0", "t1",
                                                                                  "t2"]
    assert float(rows[0]["metric_value"]) == pytest.approx(tests[0].record.metric_value)
    assert rows[0]["accuracy_value"] == ""  # None is an empty cell
    assert '"max_batch_size": 8' in rows[0]["settings_json"]
    assert '"test_id": "t2"' in json_text(tests[:3])


def test_parquet_table_types(tests: list[Stored]) -> None:
    pytest.importorskip("pyarrow")
    table = parquet_table(tests)
    assert table.num_rows == len(tests) and table.column_names == list(EXPORT_COLUMNS)
    assert str(table.schema.field("metric_value").type) == "double"
    assert str(table.schema.field("submittable").type) == "bool"
    assert table.column("p90_ns").to_pylist() == [export_row(t)["p90_ns"] for t in tests]


# ---------------------------------------------------------------------------- filters


def test_parse_since() -> None:
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_since("3d", now) == now - dt.timedelta(days=3)
    assert parse_since("90m", now) == now - dt.timedelta(minutes=90)
    assert parse_since("2026-12-01") == dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    assert parse_since("2026-12-01T10:30+02:00") == \
        dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError):
        parse_since("last tuesday")


def test_filter_describe() -> None:
    assert TestFilter().describe() == ""
    chosen = TestFilter(model="resnet50", status="VALID", last=3,
                        since=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    assert chosen.describe() == \
        "model=resnet50, status=VALID, since=2026-12-01T00:00:00+00:00, last=3"
    assert chosen.to_json() == {"model": "resnet50", "status": "VALID",
                                "since": "2026-12-01T00:00:00+00:00", "last": 3}


def test_a_failed_test_without_loadgen_results(tests: list[Stored]) -> None:
    failed = real_test(SYSTEMS[0], "dead", status=RunStatus.FAILED, loadgen=None,
                       metric_value=None, metric_name=None, metric_unit=None,
                       reasons=["SutError: the server went away"], interrupted="SIGTERM")
    view = show_view(failed)
    assert view.reasons == ("SutError: the server went away",)
    assert dict(view.sections[1].items)["interrupted"] == "SIGTERM"
    assert dict(view.sections[2].items) == {"metric": "-", "value": "-"}
    row = export_row(failed)
    assert row["status"] == "FAILED" and row["p50_ns"] is None and row["query_count"] is None
    _, column = compare([tests[0], failed], tests).columns
    assert column.regression is None and column.note == "no headline metric to compare"

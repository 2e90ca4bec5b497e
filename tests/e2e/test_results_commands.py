"""`mlperf-pilot results list/show/compare/export` on a store filled by real runs.

Four real `mlperf-pilot run`s of a tiny ONNX classifier (tests/builders.py) through the
real LoadGen, in one temp folder, fill the store once for the module:

    run 1  SingleStream accuracy + performance   (configuration A)
    run 2  SingleStream performance              (A)
    run 3  SingleStream performance              (A: 3 VALID tests, its noise is measured)
    run 4  SingleStream performance, sut.batch_timeout_us=20000   (configuration B:
           every query waits 20 ms for a batch that never fills, 100x the latency of A
           on an idle machine, still several times A's on a loaded one)

The rendered outputs are pinned by golden files in tests/golden/results/ with run ids,
times, paths and measured numbers normalised (:func:`normalise`); rerun with
MLPERF_PILOT_UPDATE_GOLDEN=1 to rewrite them after an intended change, and read the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from builders import make_imagenet_folder, make_logits_classifier
from cli_runner import Cli
from mlperf_pilot.cli.main import main
from mlperf_pilot.report.tables import EXPORT_COLUMNS

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "results"
UPDATE = os.environ.get("MLPERF_PILOT_UPDATE_GOLDEN") == "1"
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{12}")
FAST = ["--scenario", "SingleStream", "--duration-ms", "300"]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The results folder of four real runs, and the test ids each run recorded."""
    work = tmp_path_factory.mktemp("results-cmds")
    model = make_logits_classifier(work / "logits.onnx")
    data = work / "data"
    make_imagenet_folder(data, 12)
    results = work / "results"
    common = ["run", "--model-path", model, "--dataset-path", data, "--results-dir",
              results, *FAST]
    runs = [["--mode", "both"], ["--mode", "performance"], ["--mode", "performance"],
            ["--mode", "performance", "--set", "sut.batch_timeout_us=20000"]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPERF_PILOT_CACHE", str(work / "cache"))
        patch.delenv("MLPERF_PILOT_STORE", raising=False)
        patch.chdir(work)
        for extra in runs:
            _run_valid(common, extra, results, degraded="sut.batch_timeout_us=20000" in extra)
    from mlperf_pilot.results.store import open_store

    with open_store(results_dir=results) as store:
        tests = store.select()
    ids = [test.test_id for test in tests]
    perf = [test.test_id for test in tests if test.record.mode.value == "performance"]
    assert len(ids) == 5 and len(perf) == 4, ids
    return {"work": work, "results": results, "ids": ids, "a": perf[:3], "b": perf[3],
            "tests": tests}


def _run_valid(common: list[object], extra: list[str], results: Path, *,
               degraded: bool, attempts: int = 3) -> None:
    """One run; the three runs of the baseline configuration must be VALID (the noise
    figure counts VALID tests): one a loaded machine turned INVALID is pruned from the
    store and run again."""
    from mlperf_pilot.results.store import open_store

    for _ in range(attempts):
        code = main([str(arg) for arg in (*common, *extra)])
        with open_store(results_dir=results) as store:
            tests = store.select()
        newest = tests[-1].record.run_id
        mine = [t for t in tests if t.record.run_id == newest]
        if code == 0 and (degraded or all(t.record.ok for t in mine)):
            return
        assert main(["results", "prune", "--results-dir", str(results),
                     *[arg for t in mine for arg in ("--id", t.test_id)]]) == 0
    raise AssertionError(f"run {extra} was not VALID in {attempts} attempts (exit {code})")


def normalise(text: str, work: Path) -> str:
    """Run ids → <RUN1>, <RUN2>... (in order of appearance), the temp folder → <TMP>,
    ISO times → <TIME>, versions → <VERSION>, measured numbers → <N>; runs of spaces and
    of table rules collapsed (column widths follow the numbers)."""
    text = text.replace(str(work), "<TMP>")
    seen: dict[str, str] = {}

    def run_label(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<RUN{len(seen) + 1}>")

    text = RUN_ID.sub(run_label, text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?",
                  "<TIME>", text)
    text = re.sub(r"(?<![\w.])\d+\.\d+\.\d+(?:[+.]\w+)?", "<VERSION>", text)
    # measured: a number with a unit (ms, s, Samples/s, a ratio's x, a noise's %; not the
    # accuracy, exactly 100 % here), and the query count; the rest (settings, counts) kept
    text = re.sub(r"(?<![\w.<#])\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?"
                  r"(?= ?(?:ms|s|Samples/s)\b|x\b|%(?! top1))", "<N>", text)
    text = re.sub(r"(│ queries +│ )[\d,]+", r"\1<N>", text)
    text = re.sub(r"([━─═]){2,}", r"\1", text)
    text = re.sub(r" {2,}", " ", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"golden file {path} was missing: written, check it and rerun")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


def results_args(populated: dict[str, object]) -> list[object]:
    return ["--results-dir", populated["results"]]


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables drawn 1000 columns wide: no cell wraps, whatever the temp folder's length
    (the golden files compare the normalised text)."""
    from mlperf_pilot.cli import app

    monkeypatch.setattr(app.stdout, "width", 1000)


# ------------------------------------------------------------------------------- list


def test_list_golden(wide: None, cli: Cli, populated: dict[str, object]) -> None:
    result = cli("results", "list", *results_args(populated))
    assert result.code == 0, result.err
    for test_id in populated["ids"]:
        assert test_id in result.out
    check_golden("list.txt", normalise(result.out, populated["work"]))


def test_list_json_parses_back(cli: Cli, populated: dict[str, object]) -> None:
    result = cli("results", "list", "--json", *results_args(populated))
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [row["test_id"] for row in document["tests"]] == populated["ids"]
    accuracy = [row for row in document["tests"] if row["mode"] == "accuracy"]
    # the colour classifier is right on every photo: exactly 100 %
    assert [(row["accuracy"], row["accuracy_metric"]) for row in accuracy] == [(100.0, "top1")]
    assert {row["metric_unit"] for row in document["tests"] if row["mode"] == "performance"} \
        == {"ms"}
    for row in document["tests"]:
        row["metric_value"] = "<N>" if row["metric_value"] is not None else None
    check_golden("list.json", normalise(json.dumps(document, indent=2), populated["work"]))


def test_list_filters(cli: Cli, populated: dict[str, object]) -> None:
    ids, a, b = populated["ids"], populated["a"], populated["b"]

    def listed(*filters: object) -> list[str]:
        result = cli("results", "list", "--json", *filters, *results_args(populated))
        assert result.code == 0, result.err
        return [row["test_id"] for row in json.loads(result.out)["tests"]]

    assert listed("--scenario", "singlestream") == ids
    assert listed("--scenario", "Offline") == []
    assert listed("--status", "VALID") == ids
    assert listed("--status", "failed") == []
    assert listed("--kind", "run") == ids
    assert listed("--kind", "bench") == []
    assert listed("--model", "efficientnet-lite0-demo") == ids
    assert listed("--model", "resnet50") == []
    assert listed("--last", "2") == [a[2], b]
    assert listed("--since", "2000-01-01") == ids
    assert listed("--since", "1h") == ids
    assert listed("--since", "2999-01-01T00:00") == []
    document = json.loads(cli("results", "list", "--json", "--last", "2", "--scenario",
                              "singlestream", *results_args(populated)).out)
    assert document["filters"] == {"scenario": "SingleStream", "last": 2}
    result = cli("results", "list", "--status", "INVALID", *results_args(populated))
    assert result.code == 0 and "no tests matching status=INVALID in" in result.out
    bad = cli("results", "list", "--since", "yesterday", *results_args(populated))
    assert bad.code == 2 and "neither a date/time" in bad.err


def test_no_store_is_an_error_and_creates_none(cli: Cli, tmp_path: Path) -> None:
    result = cli("results", "list", "--results-dir", tmp_path / "nothing")
    assert result.code == 1
    assert "no results store at" in result.error_line()
    assert "mlperf-pilot run" in result.hint_line()
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------------------- show


def test_show_golden(wide: None, cli: Cli, populated: dict[str, object]) -> None:
    test_id = populated["b"]
    result = cli("results", "show", test_id, *results_args(populated))
    assert result.code == 0, result.err
    assert "sut.batch_timeout_us" in result.out and "20000" in result.out
    # versions and host differ from machine to machine: pinned elsewhere, not here
    kept = [line for line in result.out.splitlines()
            if not re.search(r"│ (versions|host|resolved)\.", line)]
    check_golden("show.txt", normalise("\n".join(kept), populated["work"]))


def test_show_json_and_prefix(cli: Cli, populated: dict[str, object]) -> None:
    test_id = populated["b"]
    result = cli("results", "show", test_id[:-4], "--json", *results_args(populated))
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["test_id"] == test_id
    assert document["settings"]["sut"]["batch_timeout_us"] == 20000
    assert document["record"]["loadgen"]["scenario"] == "SingleStream"
    assert Path(document["record"]["log_dir"], "mlperf_log_detail.txt").is_file()


def test_show_unknown_id(cli: Cli, populated: dict[str, object]) -> None:
    result = cli("results", "show", "no-such-test", *results_args(populated))
    assert result.code == 1
    assert "no test 'no-such-test'" in result.error_line()
    assert "mlperf-pilot results list" in result.hint_line()
    as_json = cli("results", "show", "no-such-test", "--json", *results_args(populated))
    assert json.loads(as_json.out)["error"]["type"] == "StoreError"


# ---------------------------------------------------------------------------- compare


def test_compare_flags_the_degraded_configuration(wide: None, cli: Cli,
                                                  populated: dict[str, object]) -> None:
    a, b = populated["a"], populated["b"]
    result = cli("results", "compare", a[0], b, *results_args(populated))
    assert result.code == 0, result.err
    measured = {t.test_id: t.record.metric_value for t in populated["tests"]}
    assert "REGRESSION" in result.out, (measured, result.out)
    assert "spread of 3 VALID performance tests" in result.out
    assert "sut.batch_timeout_us" in result.out  # the setting that differs
    check_golden("compare.txt", normalise(result.out, populated["work"]))
    failing = cli("results", "compare", a[0], b, "--fail-on-regression",
                  *results_args(populated))
    assert failing.code == 1

    document = json.loads(cli("results", "compare", a[0], b, "--json",
                              *results_args(populated)).out)
    assert document["baseline"] == a[0] and document["regressions"] == [b]
    baseline, degraded = document["tests"]
    assert degraded["better"] == "lower" and degraded["ratio"] > 2
    assert degraded["noise"]["measured"] and degraded["noise"]["tests"] == 3
    assert degraded["regression"] is True and baseline["regression"] is None
    assert {"key": "sut.batch_timeout_us", "values": [0, 20000]} \
        in document["settings_that_differ"]
    assert set(baseline["latency_percentiles_ns"]) >= {"50.00", "90.00", "99.00"}


def test_compare_noise_level_difference_is_not_flagged(cli: Cli,
                                                       populated: dict[str, object]) -> None:
    a = populated["a"]
    result = cli("results", "compare", *a, "--json", "--fail-on-regression",
                 *results_args(populated))
    assert result.code == 0, result.out
    document = json.loads(result.out)
    assert document["regressions"] == []
    values = [test["metric_value"] for test in document["tests"]]
    spread = max(values) / min(values) - 1
    for test in document["tests"][1:]:
        assert test["regression"] is False
        assert test["noise"]["fraction"] == pytest.approx(spread)
        assert test["worse_by"] <= spread + 1e-12
    # the same runs of one configuration: no setting that matters differs
    keys = {d["key"] for d in document["settings_that_differ"]}
    assert not keys - {"modes"}, keys


def test_compare_needs_two_ids(cli: Cli, populated: dict[str, object]) -> None:
    result = cli("results", "compare", populated["b"], *results_args(populated))
    assert result.code == 2 and "two or more test ids" in result.err


# ----------------------------------------------------------------------------- export


def test_export_csv_golden_and_rows(cli: Cli, populated: dict[str, object]) -> None:
    result = cli("results", "export", "--format", "csv", *results_args(populated))
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [row["test_id"] for row in rows] == populated["ids"]
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert rows[0]["accuracy_value"] == "100.0"
    assert all(row["status"] == "VALID" and row["scenario"] == "SingleStream" for row in rows)
    assert float(rows[-1]["p50_ns"]) > 20e6  # the degraded test waits 20 ms a query
    check_golden("export-header.csv", result.out.splitlines()[0] + "\n")


def test_export_json_with_filters(cli: Cli, populated: dict[str, object],
                                  tmp_path: Path) -> None:
    out = tmp_path / "tests.json"
    result = cli("results", "export", "--format", "json", "--out", out, "--last", "1",
                 *results_args(populated))
    assert result.code == 0, result.err
    assert "exported 1 test(s)" in result.err
    document = json.loads(out.read_text())
    assert [test["test_id"] for test in document["tests"]] == [populated["b"]]
    named = cli("results", "export", "--format", "json", *populated["a"][:2],
                *results_args(populated))
    assert [t["test_id"] for t in json.loads(named.out)["tests"]] == populated["a"][:2]


def test_export_parquet_reads_back(cli: Cli, populated: dict[str, object],
                                   tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "tests.parquet"
    result = cli("results", "export", "--format", "parquet", "--out", out, "--kind", "run",
                 *results_args(populated))
    assert result.code == 0, result.err
    table = pq.read_table(out)
    assert table.column_names == list(EXPORT_COLUMNS)
    assert table.column("test_id").to_pylist() == populated["ids"]
    values = table.column("metric_value").to_pylist()
    expected = [test.record.metric_value for test in populated["tests"]]
    assert values == expected
    assert str(table.schema.field("p90_ns").type) == "double"


def test_export_parquet_needs_out_and_pyarrow(cli: Cli, populated: dict[str, object],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli("results", "export", "--format", "parquet", *results_args(populated))
    assert result.code == 2 and "--out FILE" in result.err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    result = cli("results", "export", "--format", "parquet", "--out", tmp_path / "x.parquet",
                 *results_args(populated))
    assert result.code == 2
    assert "pyarrow is not installed" in result.error_line()
    assert "mlperf-pilot[parquet]" in result.hint_line()

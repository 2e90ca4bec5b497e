"""Real `mlperf-pilot run`s recorded in the results store: the row's fields, the run
folders that keep every test's logs, the latest folder `submission generate` reads,
a store that cannot be written, `results import` of a results folder, prune."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlperf_pilot.engine import RunObserver, resolve_spec, run_benchmark
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.records import read_record
from mlperf_pilot.results.store import open_store
from mlperf_pilot.vocab import Mode, RunStatus, Scenario

SYSTEM, MODEL = "null-cpu", "resnet50"


def _run(cli, data: Path, *extra: object):  # type: ignore[no-untyped-def]
    return cli("run", "--model", MODEL, "--backend", "null", "--dataset-path", data,
               "--scenario", "Offline", "--duration-ms", 300, "--set", "preprocess_workers=1",
               *extra)


def test_a_run_is_recorded_with_its_fields_and_run_folders(cli, colour_imagenet: Path,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    first = _run(cli, colour_imagenet)
    assert first.code == 0, first.text[-3000:]
    results = tmp_path / "results"
    store = open_store(results_dir=results)
    tests = store.select()
    assert [(t.record.mode.value, t.kind) for t in tests] == [("accuracy", "run"),
                                                              ("performance", "run")]
    run_id = tests[0].record.run_id
    ids = [t.test_id for t in tests]
    assert ids == [f"{run_id}-Offline-accuracy", f"{run_id}-Offline-performance"]
    # the summary ends naming the run, its tests and the command of their report
    lines = first.out.strip().splitlines()
    assert lines[-2] == (f"Run {run_id}: 2 test(s) recorded in {results / 'results.sqlite'}: "
                         f"{ids[0]}, {ids[1]}")
    assert lines[-1].startswith("see the report: mlperf-pilot report --last 2 ")
    assert f"mlperf-pilot results show {ids[1]}" in lines[-1]

    perf = tests[1]
    latest = ScenarioPaths.of(results, SYSTEM, MODEL, Scenario.OFFLINE)
    written = read_record(latest.record(Mode.PERFORMANCE))
    folder = results / "runs" / perf.test_id
    # the stored record is the one the run wrote, its log_dir the test's run folder
    assert perf.record == written.model_copy(update={"log_dir": str(folder)})
    assert read_record(folder / "record.json") == perf.record
    record = perf.record
    assert (record.system, record.model, record.backend, record.device, record.sut_kind,
            record.status, record.execution_mode.value if record.execution_mode else None
            ) == (SYSTEM, MODEL, "null", "cpu", "local", RunStatus.VALID, "test")
    assert record.metric_unit == "Samples/s" and record.metric_value
    assert record.loadgen is not None and "99.00" in record.loadgen.latency_percentiles_ns
    assert perf.settings["model"] == MODEL and perf.settings["execution_mode"] == "test"
    assert perf.provenance["command"].startswith("mlperf-pilot run --model resnet50")
    assert perf.provenance["versions"]["packages"]["mlcommons-loadgen"]
    assert perf.provenance["host"]["name"]
    assert perf.provenance["log_paths"]["detail"] == str(folder / "mlperf_log_detail.txt")
    row = next(r for r in store.rows() if r["test_id"] == perf.test_id)
    assert row["p99_ns"] == record.loadgen.latency_percentiles_ns["99.00"]
    assert row["metric_value"] == record.metric_value
    accuracy = tests[0]
    assert accuracy.record.accuracy is not None and row["accuracy_value"] is None
    assert (results / "runs" / accuracy.test_id / "accuracy.txt").read_text() == \
        (latest.log_dir(Mode.ACCURACY) / "accuracy.txt").read_text()
    # the run folder's logs are the latest folder's files (hard links: no copy)
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "run_spec.json",
                 "versions.json", "user.conf"):
        assert (folder / name).is_file(), name
    detail = latest.log_dir(Mode.PERFORMANCE) / "mlperf_log_detail.txt"
    assert (folder / "mlperf_log_detail.txt").stat().st_ino == detail.stat().st_ino
    first_detail = detail.read_bytes()

    # a second run: its own folders; the first run's logs are kept as they were
    second = _run(cli, colour_imagenet, "--mode", "performance")
    assert second.code == 0, second.text[-3000:]
    tests = store.select()
    assert len(tests) == 3 and tests[-1].record.run_id != run_id
    newer = results / "runs" / tests[-1].test_id
    assert (folder / "mlperf_log_detail.txt").read_bytes() == first_detail
    assert newer.is_dir() and newer != folder
    assert (newer / "mlperf_log_detail.txt").read_bytes() == detail.read_bytes() != first_detail
    # the latest folder keeps its layout: submission generate reads it (not runs/)
    out = tmp_path / "sub"
    made = cli("submission", "generate", "--division", "open", "--submitter", "Acme",
               "--results-dir", results, "--out", out, "--no-check")
    assert made.code == 0, made.text[-3000:]
    assert "wrote 1 result(s)" in made.out
    submitted = list(out.rglob("performance/run_1/mlperf_log_detail.txt"))
    assert [p.read_bytes() for p in submitted] == [detail.read_bytes()]

    # JSON: the run's id, the store and its tests' ids
    third = _run(cli, colour_imagenet, "--mode", "accuracy", "--json")
    payload = json.loads(third.out)
    assert payload["store"] == str(results / "results.sqlite")
    assert payload["test_ids"] == [f"{payload['run_id']}-Offline-accuracy"]

    # prune: the oldest of each configuration go, with their run folders
    pruned = cli("results", "prune", "--keep-last", 1, "--results-dir", results)
    assert pruned.code == 0, pruned.text
    assert f"removed {ids[0]}" in pruned.out and f"removed {ids[1]}" in pruned.out
    assert not folder.exists() and newer.is_dir()
    assert detail.is_file()  # the latest folder stays
    assert len(store.select()) == 2


class _BreakTheStore(RunObserver):
    """Writes garbage where the store goes once the run has started (a disk gone bad
    under a store, or another program's file there)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def prepared(self, run) -> None:  # type: ignore[no-untyped-def]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"\0garbage" * 512)


def test_a_store_that_cannot_be_written_loses_no_result(colour_imagenet: Path,
                                                         tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "store.sqlite"
    spec = resolve_spec([{"model": MODEL, "sut": {"backend": "null"}, "store": store,
                          "dataset_path": colour_imagenet, "scenarios": ["Offline"],
                          "modes": ["performance"], "test_duration_ms": 300,
                          "preprocess_workers": 1, "results_dir": tmp_path / "r"}])
    summary = run_benchmark(spec, observer=_BreakTheStore(store))
    assert summary.ok and summary.test_ids == []
    [record] = summary.records
    assert Path(record.log_dir, "mlperf_log_detail.txt").is_file()  # the results are kept
    [note] = [n for n in summary.notes if "not recorded in the results store" in n]
    assert note.startswith("Offline performance not recorded in the results store: "
                           f"results store {store} is not a SQLite database")
    assert f"kept in {record.log_dir}" in note and "mlperf-pilot results import" in note


def test_importing_a_results_folder_of_ours_into_a_new_store(cli, colour_imagenet: Path,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    assert _run(cli, colour_imagenet, "--mode", "performance").code == 0
    assert _run(cli, colour_imagenet, "--mode", "performance").code == 0
    results = tmp_path / "results"
    original = {t.test_id: t for t in open_store(results_dir=results).select()}
    copied = tmp_path / "copied"
    shutil.copytree(results, copied, ignore=shutil.ignore_patterns("results.sqlite*"))
    fresh = tmp_path / "fresh.sqlite"
    result = cli("results", "import", copied, "--store", fresh)
    assert result.code == 0, result.text
    # the two run folders (the latest folder's test is the second of them)
    assert result.out.strip().splitlines()[-1] == \
        f"imported 2 test(s) into {fresh}, 1 already there"
    imported = {t.test_id: t for t in open_store(fresh).select()}
    assert set(imported) == set(original)
    for test_id, test in imported.items():
        assert test.kind == "import"
        assert test.record.log_dir == str(copied / "runs" / test_id)
        assert test.record.model_copy(update={"log_dir": ""}) == \
            original[test_id].record.model_copy(update={"log_dir": ""})
        assert test.settings == original[test_id].settings
    again = cli("results", "import", copied, "--store", fresh, "--json")
    assert json.loads(again.out)["added"] == []


def test_compliance_tests_are_recorded_with_their_verdicts(cli, colour_imagenet: Path,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    result = _run(cli, colour_imagenet, "--compliance")
    assert result.code == 0, result.text[-3000:]
    tests = open_store(results_dir=tmp_path / "results").select(kind="compliance")
    assert [t.test_id.rsplit("-", 1)[1] for t in tests] == ["TEST01", "TEST04"]
    scenario = ScenarioPaths.of(tmp_path / "results", SYSTEM, MODEL, Scenario.OFFLINE).root
    for test in tests:
        name = test.test_id.rsplit("-", 1)[1]
        verdict = json.loads((scenario / "records" / f"{name}.json").read_text())
        assert test.provenance["compliance"]["status"] == verdict["status"]
        assert test.record.status is (RunStatus.INVALID if verdict["status"] == "FAIL"
                                      else RunStatus.VALID)
        folder = Path(test.record.log_dir)
        assert folder == tmp_path / "results" / "runs" / test.test_id
        assert (folder / "mlperf_log_detail.txt").read_bytes() == (
            scenario / ".compliance" / name / "mlperf_log_detail.txt").read_bytes()
        assert json.loads((folder / "compliance.json").read_text()) == verdict
        assert (folder / "verify_performance.txt").is_file()
    # imported into a new store: the run folders' tests, once each (the latest folder's
    # copies, .compliance/ and the verified <TEST>/ copies are the same tests)
    imported = cli("results", "import", tmp_path / "results", "--store",
                   tmp_path / "new.sqlite", "--json")
    payload = json.loads(imported.out)
    assert sorted(t["test_id"] for t in payload["added"]) == sorted(
        t.test_id for t in open_store(results_dir=tmp_path / "results").select())
    assert all("/runs/" in t["log_dir"] for t in payload["added"])
    assert payload["unreadable"] == []


def test_the_python_api_records_its_kind(colour_imagenet: Path, tmp_path: Path) -> None:
    """`bench` runs its pilot runs through run_benchmark(kind="bench")."""
    spec = resolve_spec([{"model": MODEL, "sut": {"backend": "null"}, "scenarios": ["Offline"],
                          "dataset_path": colour_imagenet, "modes": ["performance"],
                          "test_duration_ms": 300, "preprocess_workers": 1,
                          "results_dir": tmp_path}])
    summary = run_benchmark(spec, kind="bench")
    [test] = open_store(results_dir=tmp_path).select()
    assert test.kind == "bench" and summary.test_ids == [test.test_id]
    assert summary.store == tmp_path.resolve() / "results.sqlite"


def test_a_corrupt_store_stops_the_run_before_any_test(cli, colour_imagenet: Path,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "results" / "results.sqlite"
    bad.parent.mkdir()
    bad.write_text("not a database, but someone's notes\n" * 100)
    result = _run(cli, colour_imagenet)
    assert result.code == 1, result.text[-3000:]
    assert result.errors() == [f"error: results store {bad} is not a SQLite database "
                               "(file is not a database)"]
    assert "--store" in result.hint_line() and "Traceback" not in result.text
    assert not list((tmp_path / "results").rglob("records/*.json"))  # no test ran
    assert bad.read_text().startswith("not a database")  # the file is left as it was


def test_a_run_refused_before_any_test_makes_no_store(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = tmp_path / "results"
    refused = cli("run", "--model", MODEL, "--backend", "null", "--dataset-path",
                  tmp_path / "no-such-photos", "--results-dir", results)
    assert refused.code == 2, refused.text
    assert not (results / "results.sqlite").exists()

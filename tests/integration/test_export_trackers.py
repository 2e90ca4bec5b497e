"""`results export --to mlflow|wandb`: real stored tests to a real MLflow tracking server
and to W&B offline runs, read back.

The store is filled once for the module by two real `mlperf-pilot run`s through the real
LoadGen (tests/builders.py's tiny ONNX models): SingleStream accuracy + performance of a
classifier that answers (VALID), and Offline performance of one whose blue photos fail
inside onnxruntime (INVALID, samples_failed > 0). The MLflow tests start `mlflow server`
(MLflow 3.17.2, its own venv, SQLite backend: tests/servers/mlflow_server.py) and read
every run back with the MLflow client; the W&B test reads the records of the offline
``run-*.wandb`` files with wandb's protobuf classes (tests/wandb_records.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import sys
import time
from pathlib import Path

import pytest

from cli_runner import Cli
from mlperf_pilot.cli.main import main
from mlperf_pilot.report.exporters.base import tracked_run
from mlperf_pilot.report.tables import flatten
from wandb_records import read_records

FAST = ("--duration-ms", "300")
TEST_ID_TAG = "mlperf_pilot.test_id"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, logits_model: Path,
           failing_model: Path, colour_imagenet: Path) -> dict[str, object]:
    """A results folder whose store holds three real tests (VALID accuracy, VALID
    performance, INVALID performance with failed samples)."""
    work = tmp_path_factory.mktemp("export-trackers")
    results = work / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPERF_PILOT_CACHE", str(work / "cache"))
        patch.delenv("MLPERF_PILOT_STORE", raising=False)
        patch.chdir(work)
        code = main([str(arg) for arg in (
            "run", "--model", "efficientnet-lite0-demo", "--model-path", logits_model,
            "--dataset-path", colour_imagenet, "--results-dir", results,
            "--scenario", "SingleStream", "--mode", "both", *FAST)])
        assert code == 0
        code = main([str(arg) for arg in (
            "run", "--model", "efficientnet-lite0-demo", "--model-path", failing_model,
            "--dataset-path", colour_imagenet, "--results-dir", results,
            "--scenario", "Offline", "--mode", "performance", *FAST)])
        assert code == 1  # INVALID: its failed samples
    from mlperf_pilot.results.store import open_store

    with open_store(results_dir=results) as store:
        tests = store.select()
    assert [t.record.status.value for t in tests] == ["VALID", "VALID", "INVALID"]
    assert tests[2].record.samples_failed > 0
    return {"results": results, "tests": tests}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No tracker settings of the machine's leak in; W&B's own folders in tmp_path."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD", "MLFLOW_EXPERIMENT_NAME", "WANDB_API_KEY",
                 "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR",
                 "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


def _states(out: str) -> dict[str, tuple[str, str]]:
    """What the export printed per test: test id -> (state, the tracker's ref)."""
    found = {}
    for line in out.splitlines():
        test_id, state, ref = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        found[test_id] = (state, ref)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----------------------------------------------------------------------------- MLflow


def _runs_by_test(client, experiment: str) -> dict[str, list]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment} was not created"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    by_test: dict[str, list] = {}
    for run in runs:
        by_test.setdefault(run.data.tags[TEST_ID_TAG], []).append(run)
    return by_test


@pytest.mark.mlflow
def test_export_to_mlflow_reads_back_and_is_idempotent(
        cli: Cli, stored: dict[str, object], mlflow_server, clean_env: None,
        tmp_path: Path) -> None:
    MlflowClient = pytest.importorskip("mlflow", reason="needs mlflow-skinny (the test "
                                       "extra)").MlflowClient

    tests = stored["tests"]
    args = ("results", "export", "--to", "mlflow", "--tracking-uri", mlflow_server.url,
            "--experiment", "pilot-e2e", "--results-dir", stored["results"])
    first = cli(*args)
    assert first.code == 0, first.text[-3000:]
    assert {key: state for key, (state, _) in _states(first.out).items()} == \
        {test.test_id: "exported" for test in tests}
    assert f"exported 3 test(s) to {mlflow_server.url} (experiment 'pilot-e2e')" in first.err

    client = MlflowClient(tracking_uri=mlflow_server.url)
    by_test = _runs_by_test(client, "pilot-e2e")
    assert sorted(by_test) == sorted(test.test_id for test in tests)
    for test in tests:
        [run] = by_test[test.test_id]
        record = test.record
        # params: the resolved settings, flattened, as text
        expected = {key: value if isinstance(value, str) else json.dumps(value)
                    for key, value in flatten(test.settings).items()}
        assert run.data.params == expected
        assert run.data.params["sut.max_batch_size"] == str(test.settings["sut"]
                                                           ["max_batch_size"])
        # metrics: the headline, the percentiles (ms), the accuracy, samples_failed
        metrics = run.data.metrics
        assert metrics["samples_failed"] == record.samples_failed
        if record.mode.value == "performance":
            assert metrics["metric_value"] == pytest.approx(record.metric_value)
            p90 = record.loadgen.latency_percentiles_ns["90.00"]
            assert metrics["latency_p90_ms"] == pytest.approx(p90 / 1e6)
            assert metrics["query_count"] == record.loadgen.query_count
        else:
            assert metrics["accuracy"] == pytest.approx(record.accuracy.value)
        # tags: what the test was and concluded
        tags = run.data.tags
        assert tags["test_id"] == test.test_id and tags["run_id"] == record.run_id
        assert tags["status"] == record.status.value
        assert tags.get("reasons", "") == "; ".join(record.reasons)
        assert (tags["system"], tags["model"]) == (record.system, record.model)
        assert (tags["scenario"], tags["mode"]) == (record.scenario.value, record.mode.value)
        assert tags["sut_kind"] == "local" and tags["backend"] == "onnxruntime"
        assert tags["version.onnxruntime"] == \
            test.provenance["versions"]["packages"]["onnxruntime"]
        assert tags["mlflow.runName"] == test.test_id
        assert run.info.status == "FINISHED"
        assert run.info.start_time == int(record.started.timestamp() * 1000)
        # artifacts: the test's LoadGen logs, byte for byte
        listed = sorted(item.path for item in client.list_artifacts(run.info.run_id,
                                                                    "loadgen"))
        on_disk = sorted(f"loadgen/{p.name}" for p in Path(record.log_dir).iterdir()
                         if p.is_file())
        assert listed == on_disk and "loadgen/mlperf_log_detail.txt" in listed
        fetched = client.download_artifacts(run.info.run_id,
                                            "loadgen/mlperf_log_summary.txt",
                                            str(tmp_path / run.info.run_id))
        assert Path(fetched).read_bytes() == \
            (Path(record.log_dir) / "mlperf_log_summary.txt").read_bytes()

    invalid = by_test[tests[2].test_id][0]
    assert invalid.data.tags["status"] == "INVALID"
    assert "sample(s) failed" in invalid.data.tags["reasons"]
    assert invalid.data.metrics["samples_failed"] > 0

    # a second export adds nothing: every test is found by its tag
    second = cli(*args)
    assert second.code == 0, second.text[-3000:]
    states = _states(second.out)
    assert {key: state for key, (state, _) in states.items()} == \
        {test.test_id: "already there" for test in tests}
    assert {key: ref for key, (_, ref) in states.items()} == \
        {key: ref for key, (_, ref) in _states(first.out).items()}
    assert "exported 0 test(s)" in second.err and "3 already there" in second.err
    again = _runs_by_test(client, "pilot-e2e")
    assert {key: len(runs) for key, runs in again.items()} == {t.test_id: 1 for t in tests}


@pytest.mark.mlflow
def test_mlflow_export_keeps_secrets_out_and_respects_limits(
        stored: dict[str, object], mlflow_server, clean_env: None) -> None:
    from mlperf_pilot.report.exporters import make_exporter

    MlflowClient = pytest.importorskip("mlflow", reason="needs mlflow-skinny (the test "
                                       "extra)").MlflowClient

    base = stored["tests"][1]
    settings = json.loads(json.dumps(base.settings))
    settings["sut"].update({"token_file": "/secret/place", "api_key": "k-123",
                            "password": "hunter2"})
    settings["headers"] = {"Authorization": "Bearer abc"}
    settings["long_note"] = "x" * 7000  # over MLflow's 6000-character param limit
    crafted = dataclasses.replace(base, test_id=base.test_id + "-crafted", settings=settings)

    summary = make_exporter("mlflow", tracking_uri=mlflow_server.url,
                            experiment="pilot-limits").export([crafted])
    assert [t.test_id for t in summary.exported] == [crafted.test_id]
    client = MlflowClient(tracking_uri=mlflow_server.url)
    run = client.get_run(summary.exported[0].ref)
    text = json.dumps({"params": run.data.params, "tags": run.data.tags})
    for secret in ("/secret/place", "k-123", "hunter2", "Bearer abc"):
        assert secret not in text
    assert not any("token" in key or "password" in key or "api_key" in key
                   or "Authorization" in key for key in run.data.params)
    assert len(run.data.params["long_note"]) == 6000
    assert run.data.params["long_note"].endswith("…[cut]")
    assert run.data.tags["mlperf_pilot.truncated_params"] == "long_note"


@pytest.mark.mlflow
def test_a_run_an_interrupted_export_left_is_replaced(
        stored: dict[str, object], mlflow_server, clean_env: None) -> None:
    from mlperf_pilot.report.exporters import make_exporter

    MlflowClient = pytest.importorskip("mlflow", reason="needs mlflow-skinny (the test "
                                       "extra)").MlflowClient
    client = MlflowClient(tracking_uri=mlflow_server.url)
    test = stored["tests"][1]
    experiment_id = client.create_experiment("pilot-resume")
    # what an export killed after create_run leaves: a RUNNING run with the tag, no data
    leftover = client.create_run(experiment_id, tags={TEST_ID_TAG: test.test_id})
    summary = make_exporter("mlflow", tracking_uri=mlflow_server.url,
                            experiment="pilot-resume").export([test])
    [done] = summary.exported
    assert done.ref != leftover.info.run_id
    assert client.get_run(leftover.info.run_id).info.lifecycle_stage == "deleted"
    [run] = client.search_runs([experiment_id])
    assert run.info.run_id == done.ref and run.info.status == "FINISHED"
    assert run.data.metrics["metric_value"] == pytest.approx(test.record.metric_value)


def test_mlflow_server_that_does_not_answer_is_one_clear_error(
        cli: Cli, stored: dict[str, object], clean_env: None) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = cli("results", "export", "--to", "mlflow", "--tracking-uri", url,
                 "--results-dir", stored["results"])
    assert result.code == 1
    assert result.error_line().startswith(f"error: the MLflow tracking server at {url} "
                                          "does not answer")
    assert "start it" in result.hint_line()


def test_tracker_options_are_checked(cli: Cli, stored: dict[str, object],
                                     clean_env: None) -> None:
    results = stored["results"]
    with_credentials = cli("results", "export", "--to", "mlflow", "--tracking-uri",
                           "http://user:pw@127.0.0.1:5000", "--results-dir", results)
    assert with_credentials.code == 2
    assert "must not hold credentials" in with_credentials.error_line()
    assert "pw" not in with_credentials.text.replace("password", "")
    no_uri = cli("results", "export", "--to", "mlflow", "--results-dir", results)
    assert no_uri.code == 2 and "--to mlflow needs --tracking-uri" in no_uri.err
    no_dir = cli("results", "export", "--to", "wandb", "--results-dir", results)
    assert no_dir.code == 2 and "--to wandb needs --wandb-dir" in no_dir.err
    unknown = cli("results", "export", "--to", "neptune", "--tracking-uri", "x",
                  "--results-dir", results)
    assert unknown.code == 2
    assert "neptune" in unknown.error_line()
    assert "mlflow" in unknown.text and "wandb" in unknown.text
    with_out = cli("results", "export", "--to", "wandb", "--wandb-dir", "w", "--out",
                   "x.csv", "--results-dir", results)
    assert with_out.code == 2 and "no --format/--out" in with_out.err


def test_a_missing_tracker_library_names_its_extra(
        cli: Cli, stored: dict[str, object], clean_env: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the library made unimportable for this test only (None in sys.modules)
    for name in [n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    result = cli("results", "export", "--to", "mlflow", "--tracking-uri",
                 "http://127.0.0.1:9", "--results-dir", stored["results"])
    assert result.code == 2
    assert "mlflow-skinny is not installed" in result.error_line()
    assert "pip install 'mlperf-pilot[mlflow]'" in result.hint_line()


# ------------------------------------------------------------------------------ W&B


def _records_by_kind(path: Path) -> dict[str, list]:
    found: dict[str, list] = {}
    for record in read_records(path):
        found.setdefault(record.WhichOneof("record_type"), []).append(record)
    return found


def test_export_to_wandb_offline_reads_back(cli: Cli, stored: dict[str, object],
                                            clean_env: None, tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="needs wandb (the test extra)")
    tests = stored["tests"]
    where = tmp_path / "wandb-out"
    args = ("results", "export", "--to", "wandb", "--wandb-dir", where,
            "--results-dir", stored["results"])
    first = cli(*args)
    assert first.code == 0, first.text[-3000:]
    assert f"`wandb sync {where}/wandb/offline-run-*` uploads them later" in first.err
    for test in tests:
        [folder] = sorted((where / "wandb").glob(f"offline-run-*-{test.test_id}"))
        assert _states(first.out)[test.test_id] == ("exported", str(folder))
        records = _records_by_kind(folder / f"run-{test.test_id}.wandb")
        [run] = records["run"]
        assert run.run.run_id == test.test_id and run.run.display_name == test.test_id
        assert run.run.project == "mlperf-pilot" and run.run.run_group == test.record.run_id
        assert run.run.tags[0] == test.record.status.value
        config = {item.key: json.loads(item.value_json) for item in run.run.config.update}
        assert config["sut"]["max_batch_size"] == test.settings["sut"]["max_batch_size"]
        assert config["scenarios"] == test.settings["scenarios"]
        assert config["mlperf_pilot"]["test_id"] == test.test_id
        assert config["mlperf_pilot"]["status"] == test.record.status.value
        summary: dict[str, object] = {}
        for record in records["summary"]:
            summary.update({item.key: json.loads(item.value_json)
                            for item in record.summary.update if item.key})
        expected = tracked_run(test).metrics
        for key, value in expected.items():
            assert summary[key] == pytest.approx(value), key
        if test.record.mode.value == "performance":
            assert summary["latency_p90_ms"] == pytest.approx(
                test.record.loadgen.latency_percentiles_ns["90.00"] / 1e6)
        [artifact] = records["artifact"]
        names = sorted(entry.path for entry in artifact.artifact.manifest.contents)
        assert names == sorted(p.name for p in Path(test.record.log_dir).iterdir()
                               if p.is_file())
        assert records["exit"][0].exit.exit_code == 0

    second = cli(*args)
    assert second.code == 0, second.text[-3000:]
    assert "exported 0 test(s)" in second.err and "3 already there" in second.err
    assert len(list((where / "wandb").glob("offline-run-*"))) == 3


@pytest.mark.mlflow
@pytest.mark.slow
def test_the_mlflow_server_helper_stops_the_job_runner_too(mlflow_python: Path,
                                                           tmp_path: Path) -> None:
    # with MLflow's jobs on, `mlflow server` starts `_job_runner` and its huey consumers,
    # which outlive a SIGTERM for seconds: the helper stops every one by PID
    from servers.mlflow_server import alive, start_mlflow_server

    with start_mlflow_server(tmp_path / "server", jobs=True, python=mlflow_python) as server:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                "_job_runner" in _cmdline(pid) for pid in server.note_children()):
            time.sleep(0.5)
        pids = [server.pid, *server.note_children()]
        assert any("_job_runner" in _cmdline(pid) for pid in pids), \
            [_cmdline(pid) for pid in pids]
    assert not [pid for pid in pids if alive(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""

"""`mlperf-pilot sweep plan` and the local executor: the matrix (product, include,
exclude) validated point by point before anything runs, each point its own `mlperf-pilot
run` process on a tiny real ONNX model (tests/builders.py), its results in the store, a
cancelled point FAILED with the reason, and `sweep resume` rerunning only it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlperf_pilot.sweep.grid import expand_matrix, time_limit_minutes
from sweeps import write_tiny_sweep


def _write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -------------------------------------------------------------------------------- grid


def test_matrix_product_exclude_and_include_as_in_ci_matrices() -> None:
    combos = expand_matrix({
        "sut.max_batch_size": [1, 4], "sut.threads": [1, 2],
        "exclude": [{"sut.max_batch_size": 4, "sut.threads": 1}],
        "include": [{"sut.threads": 2, "count": 8},  # extends both threads=2 points
                    {"sut.max_batch_size": 2, "sut.threads": 1}],  # a point of its own
    })
    assert combos == [
        {"sut.max_batch_size": 1, "sut.threads": 1},
        {"sut.max_batch_size": 1, "sut.threads": 2, "count": 8},
        {"sut.max_batch_size": 4, "sut.threads": 2, "count": 8},
        {"sut.max_batch_size": 2, "sut.threads": 1},
    ]


@pytest.mark.parametrize(("text", "minutes"), [
    ("90", 90), (15, 15), ("10:30", 11), ("1:00:00", 60), ("2-0", 2880), ("1-1:30", 1530)])
def test_time_limits_in_slurms_spellings(text: object, minutes: int) -> None:
    assert time_limit_minutes(text) == minutes  # type: ignore[arg-type]


def test_plan_prints_every_point_as_its_run_command(cli, tmp_path: Path) -> None:
    _write(tmp_path, """\
name: grid
base: {model: efficientnet-lite0-demo, scenarios: [Offline], modes: [performance]}
matrix:
  sut.max_batch_size: [1, 4, 8]
  sut.threads: [1, 2]
  exclude: [{sut.max_batch_size: 8, sut.threads: 1}]
  include: [{sut.max_batch_size: 2, sut.threads: 2, test_duration_ms: 500}]
""")
    shown = cli("sweep", "plan", "sweep.yaml")
    assert shown.code == 0, shown.text
    assert shown.out.startswith("6 point(s) in sweep.yaml")
    commands = [line.strip() for line in shown.out.splitlines()
                if line.strip().startswith("mlperf-pilot run")]
    assert len(commands) == 6
    assert commands[0] == ("mlperf-pilot run --model efficientnet-lite0-demo --mode "
                           "performance --max-batch-size 1 --threads 1 --scenario Offline")
    assert commands[-1].endswith("--max-batch-size 2 --threads 2 --set test_duration_ms=500 "
                                 "--scenario Offline")
    assert not any("--max-batch-size 8 --threads 1" in c for c in commands)

    as_json = json.loads(cli("sweep", "plan", "sweep.yaml", "--json").out)
    assert as_json["count"] == 6
    assert as_json["points"][5]["values"] == {
        "sut.max_batch_size": 2, "sut.threads": 2, "test_duration_ms": 500}


def test_plan_refuses_an_invalid_point_before_anything_runs(cli, tmp_path: Path) -> None:
    _write(tmp_path, "matrix:\n  sut.max_batch_size: [2, 0]\n")
    refused = cli("sweep", "plan", "sweep.yaml")
    assert refused.code == 2
    assert refused.errors() == [
        "error: sweep point p001 (sut.max_batch_size=0): invalid setting sut.max_batch_size: "
        "Input should be greater than or equal to 1 (got 0)"]
    assert "--max-batch-size" in refused.hint_line()
    ran = cli("sweep", "run", "sweep.yaml")  # nor does `run` start any point
    assert ran.code == 2 and not (tmp_path / "results").exists()

    _write(tmp_path, "matrix:\n  sut.thread: [1]\n")
    unknown = cli("sweep", "plan", "sweep.yaml")
    assert unknown.code == 2
    assert "unknown setting 'sut.thread'" in unknown.error_line()
    assert "threads" in unknown.hint_line()

    _write(tmp_path, "matrix: {sut.threads: [1]}\nexecutor: {time_limit: soon}\n")
    bad_limit = cli("sweep", "plan", "sweep.yaml")
    assert bad_limit.code == 2 and "time limit 'soon'" in bad_limit.error_line()

    _write(tmp_path, "matrix: {sut.threads: [1]}\n")
    no_executor = cli("sweep", "run", "sweep.yaml", "--executor", "pbs")
    assert no_executor.code == 2 and "pbs" in no_executor.error_line()


# ------------------------------------------------------------------- the local executor


def test_local_sweep_cancel_and_resume(cli, tmp_path: Path, logits_model: Path,
                                       colour_imagenet: Path) -> None:
    from mlperf_pilot.results.store import open_store
    from mlperf_pilot.sweep.job import PID_FILE
    from mlperf_pilot.sweep.state import load_state

    write_tiny_sweep(tmp_path, "tiny", logits_model, colour_imagenet,
                     {"sut.max_batch_size": [1, 2, 4]}, duration_ms=2000)
    # `sweep run` in its own process, as a user runs it, one point after the other; the
    # second is cancelled from here with `sweep cancel` while it runs, so the third is
    # never started
    runner = subprocess.Popen([sys.executable, "-m", "mlperf_pilot", "sweep", "run",
                               "sweep.yaml"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        sweeps = tmp_path / "results" / "sweeps"
        pid_file = None
        deadline = time.monotonic() + 180
        while pid_file is None or not pid_file.exists():
            assert runner.poll() is None and time.monotonic() < deadline, runner.stderr
            folders = list(sweeps.glob("*/sweep.json")) if sweeps.exists() else []
            if folders:
                pid_file = folders[0].parent / "p001" / "attempt-1" / PID_FILE
            time.sleep(0.3)
        sweep_id = pid_file.parents[2].name
        time.sleep(1)
        running = cli("sweep", "status", sweep_id)
        assert running.code == 0 and "running" in running.out, running.text
        cancelled = cli("sweep", "cancel", sweep_id)
        assert cancelled.code == 0 and "cancelled 1 job(s)" in cancelled.err
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 1, err
    state = load_state(sweep_id, tmp_path / "results")
    assert [p.status for p in state.points] == ["done", "failed", "failed"], out
    killed, never = state.points[1].reason or "", state.points[2].reason or ""
    assert killed.startswith("exit ") and "run.log" in killed, killed  # SIGTERM's exit
    assert "never started" in never, never  # skipped after the cancel
    assert "failed" in out and "p001" in out

    store = open_store(tmp_path / "results" / "results.sqlite")
    failed = store.select(kind="sweep")
    assert sorted(t.record.reasons[0].split()[3] for t in failed) == ["p001", "p002"]
    assert all(t.record.status.value == "FAILED" for t in failed)
    done_ids = list(state.points[0].test_ids)
    assert len(done_ids) >= 1

    resumed = cli("sweep", "resume", sweep_id)
    assert resumed.code == 0, resumed.text
    assert "rerunning p001, p002" in resumed.err, resumed.text
    state = load_state(sweep_id, tmp_path / "results")
    assert [(p.status, p.attempts) for p in state.points] == [
        ("done", 1), ("done", 2), ("done", 2)]
    assert state.points[0].test_ids == done_ids  # the finished point did not run again
    runs = store.select(kind="run")
    for point in state.points:
        mine = [t for t in runs if t.test_id in point.test_ids]
        assert mine and all(f"/{point.id}/attempt-{point.attempts}/" in t.record.log_dir
                            for t in mine)
        assert any(t.record.status.value == "VALID" for t in mine)
    again = cli("sweep", "resume", sweep_id)
    assert again.code == 0 and "nothing to rerun" in again.err

    # an attempt's own store merged again adds nothing (the ids are kept)
    from mlperf_pilot.sweep.state import merge_job_store

    rows = len(store.rows())
    assert merge_job_store(store, state.points[1].attempt_dir(state.folder)) == \
        state.points[1].test_ids
    assert len(store.rows()) == rows

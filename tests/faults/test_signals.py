"""Interrupts, signals and concurrent runs leave a truthful state on disk.

Every case starts the real console script (``spawn_cli``: its own session, so a signal
"to the group" is what a terminal's Ctrl-C sends), waits until the LoadGen test of the
child process is really running (its detail log has content), sends a real signal and
asserts the exit code, the message, the records and logs on disk, and that no test
process is left running. Runs use the null backend (no model file) on 24 photos:
SingleStream with a long ``--duration-ms`` so the signal lands mid-test.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import CliResult, assert_clean_error

MODEL_DIR = Path("results") / "null-cpu" / "resnet50"
SCENARIO = "SingleStream"
LONG_MS = 120_000  # far longer than any case waits: the signal must end the test


def _argv(data: Path, *modes: str, duration_ms: int = LONG_MS) -> list[str]:
    argv = ["run", "--model", "resnet50", "--backend", "null", "--dataset-path", str(data),
            "--scenario", SCENARIO, "--duration-ms", str(duration_ms),
            "--set", "preprocess_workers=1"]
    for mode in modes or ("accuracy", "performance"):
        argv += ["--mode", mode]
    return argv


def _children(pid: int) -> list[int]:
    """Every descendant of pid (Linux /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            text = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        kids = [int(v) for v in text.split()]
        found += kids
        todo += kids
    return found


def _test_process(pid: int) -> int | None:
    """The PID of the mlperf_pilot.engine.child child of pid, if one runs now."""
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"mlperf_pilot.engine.child" in cmdline:
            return child
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _performance_log_running(cwd: Path, since: float = 0.0) -> Callable[[], bool]:
    """True once a performance run's detail log (in any folder of the scenario, final
    or staging) has content written after ``since``."""
    def check() -> bool:
        for log in (cwd / MODEL_DIR).glob(f"*{SCENARIO}*/performance/run_1/"
                                           "mlperf_log_detail.txt"):
            try:
                stat = log.stat()
            except OSError:
                continue
            if stat.st_size > 2000 and stat.st_mtime >= since:
                return True
        return False
    return check


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _record(path: Path) -> dict:
    return json.loads(path.read_text())


def _interrupt(spawned, target: str, sig: signal.Signals) -> tuple[CliResult, int, float]:
    """Send sig to the group or the parent once the performance test runs; returns the
    result, the test process's PID and the seconds from signal to exit."""
    parent = spawned.process.pid
    spawned.wait_for(_performance_log_running(spawned.cwd), what="the LoadGen test")
    child = _test_process(parent)
    assert child is not None, "no test process while LoadGen logs are being written"
    sent = time.monotonic()
    if target == "group":
        os.killpg(parent, sig)
    else:
        spawned.send(sig)
    result = spawned.finish(timeout=60)
    return result, child, time.monotonic() - sent


# ------------------------------------------------------------------ interrupts


@pytest.mark.parametrize(("target", "sig", "code"), [
    ("group", signal.SIGINT, 130),     # Ctrl-C in a terminal
    ("parent", signal.SIGINT, 130),    # kill -INT <pid>
    ("parent", signal.SIGTERM, 143),   # kill <pid>, a scheduler's stop
])
def test_a_signal_during_the_loadgen_test_is_recorded_and_exits_128_plus_signal(
    spawn_cli, colour_imagenet: Path, target: str, sig: signal.Signals, code: int,
) -> None:
    spawned = spawn_cli(*_argv(colour_imagenet))
    result, child, took = _interrupt(spawned, target, sig)
    # the exit code a shell reports for a process stopped by that signal, fast
    assert result.code == code, result.text[-3000:]
    assert took < 30, f"took {took:.1f} s to stop"
    assert not _alive(child), "the test process is still running"
    assert_clean_error(result, code, cause=f"interrupted by {sig.name}", fix="rerun")
    # the finished test (accuracy) is summarised, the interrupted one is marked
    assert "VALID" in result.out and "accuracy" in result.out
    assert "FAILED" in result.out and "interrupted" in result.out
    assert f"not run: {SCENARIO} performance" in result.err  # what was left
    scenario = spawned.cwd / MODEL_DIR / SCENARIO
    performance = _record(scenario / "records" / "performance.json")
    assert performance["status"] == "FAILED"
    assert performance["interrupted"] == sig.name
    assert any(f"interrupted by {sig.name}" in r for r in performance["reasons"])
    assert Path(performance["log_dir"]) == scenario / "performance" / "run_1"
    # the partial LoadGen logs are kept where the record says
    assert (scenario / "performance" / "run_1" / "mlperf_log_detail.txt").stat().st_size > 0
    accuracy = _record(scenario / "records" / "accuracy.json")
    assert accuracy["status"] == "VALID"
    assert (scenario / "accuracy" / "mlperf_log_accuracy.json").is_file()
    # both tests are in the results store, the interrupted one FAILED with its reason
    from mlperf_pilot.results.store import open_store

    stored = {t.record.mode.value: t for t in open_store(
        results_dir=spawned.cwd / "results").select()}
    assert stored["accuracy"].record.status == "VALID"
    failed = stored["performance"].record
    assert failed.status == "FAILED" and failed.interrupted == sig.name
    assert any(f"interrupted by {sig.name}" in r for r in failed.reasons)
    assert (Path(failed.log_dir) / "mlperf_log_detail.txt").read_bytes() == \
        (scenario / "performance" / "run_1" / "mlperf_log_detail.txt").read_bytes()
    assert stored["performance"].test_id in result.out.replace("\n", "")
    # nothing half-written is left beside the result
    assert sorted(p.name for p in (spawned.cwd / MODEL_DIR).iterdir()
                  if not p.name.startswith(".mlperf-pilot.lock")) == [SCENARIO]


def test_an_interrupted_json_run_prints_what_finished_and_the_error_object(
    spawn_cli, colour_imagenet: Path,
) -> None:
    spawned = spawn_cli(*_argv(colour_imagenet), "--json")
    result, _, _ = _interrupt(spawned, "group", signal.SIGINT)
    assert result.code == 130, result.text[-3000:]
    payload = json.loads(result.out)
    assert payload["ok"] is False and payload["interrupted"] == "SIGINT"
    assert payload["error"]["exit_code"] == 130 and payload["error"]["type"] == "Interrupted"
    assert "interrupted by SIGINT" in payload["error"]["message"]
    assert "rerun" in payload["error"]["hint"]
    modes = {(r["mode"], r["status"]) for r in payload["records"]}
    assert ("accuracy", "VALID") in modes and ("performance", "FAILED") in modes


def test_sigkill_to_the_test_process_is_reported_with_the_signal(
    spawn_cli, colour_imagenet: Path,
) -> None:
    spawned = spawn_cli(*_argv(colour_imagenet, "performance"))
    spawned.wait_for(_performance_log_running(spawned.cwd), what="the LoadGen test")
    child = _test_process(spawned.process.pid)
    assert child is not None
    os.kill(child, signal.SIGKILL)
    result = spawned.finish(timeout=60)
    assert result.code == 1, result.text[-3000:]  # a failed run, not an interrupted one
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert not _alive(child)
    record = _record(spawned.cwd / MODEL_DIR / SCENARIO / "records" / "performance.json")
    assert record["status"] == "FAILED"
    (reason,) = record["reasons"]
    assert "killed by SIGKILL" in reason, reason
    assert "killed by SIGKILL" in result.out
    # the stderr file the reason names exists
    named = reason.rsplit("(see ", 1)[1].rstrip(")")
    assert Path(named).is_file(), reason
    assert Path(named).parent == spawned.cwd / MODEL_DIR / SCENARIO / "records"


def test_sigkill_to_the_parent_stops_the_test_process_and_the_next_run_keeps_its_part(
    spawn_cli, cli, colour_imagenet: Path,
) -> None:
    spawned = spawn_cli(*_argv(colour_imagenet, "performance"))
    spawned.wait_for(_performance_log_running(spawned.cwd), what="the LoadGen test")
    child = _test_process(spawned.process.pid)
    assert child is not None
    spawned.send(signal.SIGKILL)  # nothing of the parent runs any more
    assert spawned.finish(timeout=30).code == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the test process outlived its parent"
    staging = spawned.cwd / MODEL_DIR / f".{SCENARIO}.staging"
    record = _record(staging / "records" / "performance.json")
    assert record["status"] == "FAILED" and record["interrupted"] == "SIGHUP"
    assert "the mlperf-pilot process that started it ended" in record["reasons"][0]
    # the next run is not locked out, and keeps the leftover as interrupted
    assert cli(*_argv(colour_imagenet, "performance", duration_ms=300)).code == 0
    kept = spawned.cwd / MODEL_DIR / f".{SCENARIO}.interrupted"
    assert _record(kept / "records" / "performance.json")["log_dir"] == \
        str(kept / "performance" / "run_1")
    assert not staging.exists()
    assert _record(spawned.cwd / MODEL_DIR / SCENARIO / "records" / "performance.json")[
        "status"] == "VALID"


# ------------------------------------------------------- one results folder, two runs


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_holder(
    spawn_cli, cli, colour_imagenet: Path,
) -> None:
    first = spawn_cli(*_argv(colour_imagenet, "performance"))
    first.wait_for(_performance_log_running(first.cwd), what="the first run's LoadGen test")
    second = cli(*_argv(colour_imagenet, "performance", duration_ms=300))
    assert_clean_error(second, 2, cause="in use by another run", fix="--results-dir")
    assert f"pid {first.process.pid}" in second.err
    assert "mlperf-pilot run" in second.err
    # the refused run changed nothing: the first one ends as if alone
    first.send(signal.SIGINT)
    result = first.finish(timeout=60)
    assert result.code == 130, result.text[-3000:]
    record = _record(first.cwd / MODEL_DIR / SCENARIO / "records" / "performance.json")
    assert record["interrupted"] == "SIGINT"
    assert record["log_dir"].endswith(f"{SCENARIO}/performance/run_1")


def test_rerun_interrupted_mid_way_keeps_the_previous_result_complete(
    spawn_cli, colour_imagenet: Path,
) -> None:
    done = spawn_cli(*_argv(colour_imagenet, duration_ms=300)).finish()
    assert done.code == 0, done.text[-3000:]
    rerun = spawn_cli(*_argv(colour_imagenet))
    scenario = rerun.cwd / MODEL_DIR / SCENARIO
    before = _snapshot(scenario)
    assert "records/accuracy.json" in before and "performance/run_1/mlperf_log_detail.txt" \
        in before
    started = time.time()
    rerun.wait_for(_performance_log_running(rerun.cwd, since=started),
                   what="the rerun's LoadGen test")
    rerun.send(signal.SIGINT)
    result = rerun.finish(timeout=60)
    assert result.code == 130, result.text[-3000:]
    assert_clean_error(result, 130, cause="interrupted by SIGINT")
    # the previous result is untouched, file for file
    assert _snapshot(scenario) == before
    # the interrupted rerun's partial results are kept beside it, marked, and named
    kept = rerun.cwd / MODEL_DIR / f".{SCENARIO}.interrupted"
    assert str(kept) in result.err
    record = _record(kept / "records" / "performance.json")
    assert record["status"] == "FAILED" and record["interrupted"] == "SIGINT"
    assert Path(record["log_dir"]) == kept / "performance" / "run_1"
    assert (kept / "performance" / "run_1" / "mlperf_log_detail.txt").is_file()
    assert _record(kept / "records" / "accuracy.json")["status"] == "VALID"


def test_a_rerun_replaces_what_it_redid_and_keeps_the_rest(cli, colour_imagenet: Path,
                                                           tmp_path: Path) -> None:
    assert cli(*_argv(colour_imagenet, duration_ms=300)).code == 0
    scenario = tmp_path / MODEL_DIR / SCENARIO
    first = _snapshot(scenario)
    # performance only: accuracy carried over unchanged, performance and user.conf new
    assert cli(*_argv(colour_imagenet, "performance", duration_ms=300)).code == 0
    second = _snapshot(scenario)
    for name in ("accuracy/mlperf_log_accuracy.json", "accuracy/accuracy.txt",
                 "records/accuracy.json"):
        assert second[name] == first[name], name
    assert second["performance/run_1/mlperf_log_detail.txt"] != \
        first["performance/run_1/mlperf_log_detail.txt"]
    record = _record(scenario / "records" / "performance.json")
    assert record["status"] == "VALID" and Path(record["log_dir"]).parent.parent == scenario
    # accuracy only: the performance run and the user.conf that made it stay together
    assert cli(*_argv(colour_imagenet, "accuracy", duration_ms=300)).code == 0
    third = _snapshot(scenario)
    for name in ("user.conf", "run_spec.json", "performance/run_1/mlperf_log_detail.txt",
                 "records/performance.json"):
        assert third[name] == second[name], name
    assert third["accuracy/mlperf_log_accuracy.json"] and (
        scenario / "records" / "accuracy.user.conf").is_file()
    # no staging folder is left behind
    assert [p.name for p in (tmp_path / MODEL_DIR).iterdir()
            if p.name.startswith(f".{SCENARIO}")] == []

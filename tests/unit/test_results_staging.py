"""The results folder's lock and the staging of a scenario (results.staging)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlperf_pilot.errors import ResultsInUseError
from mlperf_pilot.interrupts import Interrupted
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.staging import HOLDER_FILE, ResultsLock, ScenarioStage, relocate_text

PREVIOUS = {
    "accuracy/mlperf_log_accuracy.json": "[]",
    "accuracy/accuracy.txt": "accuracy=50.000%",
    "performance/run_1/mlperf_log_detail.txt": "detail",
    ".attempts/performance-1/mlperf_log_detail.txt": "first attempt",
    "TEST01/verify_performance.txt": "TEST PASS",
    ".compliance/TEST01/mlperf_log_detail.txt": "audit",
    "user.conf": "resnet50.Offline.target_qps = 10",
    "run_spec.json": "{}",
    "versions.json": "{}",
    "records/accuracy.json": "{}",
    "records/performance.json": "{}",
    "records/performance.stderr.txt": "warning",
    "records/TEST01.json": "{}",
    "notes.txt": "the user's own file",
}


def _previous(root: Path) -> ScenarioPaths:
    paths = ScenarioPaths(root / "sys" / "resnet50" / "Offline")
    for name, text in PREVIOUS.items():
        (paths.root / name).parent.mkdir(parents=True, exist_ok=True)
        (paths.root / name).write_text(text)
    record = {"log_dir": str(paths.root / "performance" / "run_1"),
              "reasons": [f"see {paths.root}/records/performance.stderr.txt"]}
    (paths.root / "records" / "performance.json").write_text(json.dumps(record))
    return paths


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("accuracy", "performance", "carried"), [
    (True, True, {"notes.txt"}),
    (False, True, {"notes.txt", "accuracy/mlperf_log_accuracy.json", "accuracy/accuracy.txt",
                   "records/accuracy.json"}),
    (True, False, set(PREVIOUS) - {"accuracy/mlperf_log_accuracy.json",
                                   "accuracy/accuracy.txt", "records/accuracy.json",
                                   "TEST01/verify_performance.txt",
                                   ".compliance/TEST01/mlperf_log_detail.txt",
                                   "records/TEST01.json"}),
    (False, False, set(PREVIOUS)),  # compliance only: everything it tests stays
])
def test_the_staging_folder_carries_what_the_run_does_not_redo(
    tmp_path: Path, accuracy: bool, performance: bool, carried: set[str],
) -> None:
    final = _previous(tmp_path)
    stage = ScenarioStage(final, accuracy=accuracy, performance=performance)
    staging = stage.begin()
    assert staging.root == final.root.with_name(".Offline.staging")
    assert _files(staging.root) == carried
    assert stage.carried_performance == (not performance)
    assert _files(final.root) == set(PREVIOUS)  # the previous folder is untouched


def test_commit_replaces_the_previous_folder_and_records_name_the_final_paths(
    tmp_path: Path,
) -> None:
    final = _previous(tmp_path)
    stage = ScenarioStage(final, accuracy=False, performance=True)
    staging = stage.begin()
    (staging.root / "performance" / "run_1").mkdir(parents=True)
    (staging.root / "performance" / "run_1" / "mlperf_log_detail.txt").write_text("new")
    (staging.root / "records" / "performance.json").write_text(json.dumps(
        {"log_dir": str(staging.root / "performance" / "run_1"),
         "reasons": [f"kept in {staging.root}/.attempts/performance-1"]}))
    assert stage.commit() == final.root
    assert not staging.root.exists()
    assert [p.name for p in final.root.parent.iterdir()] == ["Offline"]
    assert (final.root / "performance/run_1/mlperf_log_detail.txt").read_text() == "new"
    assert (final.root / "accuracy/accuracy.txt").read_text() == "accuracy=50.000%"
    assert not (final.root / ".attempts").exists()  # the old attempts went with their run
    record = json.loads((final.root / "records" / "performance.json").read_text())
    assert record["log_dir"] == str(final.root / "performance" / "run_1")
    assert record["reasons"] == [f"kept in {final.root}/.attempts/performance-1"]


def test_an_unfinished_rerun_goes_beside_the_previous_results(tmp_path: Path) -> None:
    final = _previous(tmp_path)
    before = {n: (final.root / n).read_bytes() for n in _files(final.root)}
    stage = ScenarioStage(final, accuracy=True, performance=True)
    staging = stage.begin()
    (staging.root / "records").mkdir(exist_ok=True)
    (staging.root / "records" / "accuracy.json").write_text(
        json.dumps({"log_dir": str(staging.root / "accuracy")}))
    where, previous_kept = stage.keep_partial()
    assert previous_kept and where == final.root.with_name(".Offline.interrupted")
    assert {n: (final.root / n).read_bytes() for n in _files(final.root)} == before
    assert json.loads((where / "records" / "accuracy.json").read_text())["log_dir"] == \
        str(where / "accuracy")


def test_an_unfinished_first_run_goes_into_place(tmp_path: Path) -> None:
    final = ScenarioPaths(tmp_path / "sys" / "m" / "Server")
    stage = ScenarioStage(final, accuracy=True, performance=False)
    (stage.begin().root / "records").mkdir()
    assert stage.keep_partial() == (final.root, False)
    assert (final.root / "records").is_dir()


def test_leftovers_of_a_killed_run_are_recovered(tmp_path: Path) -> None:
    final = _previous(tmp_path)
    # killed between the two renames of a commit: the previous folder is restored
    final.root.rename(final.root.with_name(".Offline.replaced"))
    # and its staging folder is kept as interrupted, never deleted unseen
    leftover = final.root.with_name(".Offline.staging")
    (leftover / "records").mkdir(parents=True)
    (leftover / "records" / "performance.json").write_text(
        json.dumps({"log_dir": str(leftover / "performance" / "run_1")}))
    ScenarioStage(final, accuracy=True, performance=True).begin()
    assert _files(final.root) == set(PREVIOUS)
    kept = final.root.with_name(".Offline.interrupted")
    assert json.loads((kept / "records" / "performance.json").read_text())["log_dir"] == \
        str(kept / "performance" / "run_1")


def test_relocate_text_moves_whole_path_components_only(tmp_path: Path) -> None:
    old, new = tmp_path / ".Offline.staging", tmp_path / "Offline"
    assert relocate_text(f"{old}/records/x.json", old, new) == f"{new}/records/x.json"
    assert relocate_text(f"(see {old})", old, new) == f"(see {new})"
    assert relocate_text(f"{old}2/x", old, new) == f"{old}2/x"


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mlperf_pilot.results.staging import ResultsLock
    with ResultsLock(Path(sys.argv[1]), "mlperf-pilot run --holder"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_locked_results_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "sys" / "resnet50"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsInUseError) as info:
            ResultsLock(folder, "mlperf-pilot run --second").acquire()
        assert info.value.exit_code == 2
        assert f"pid {holder.pid}" in info.value.message
        assert "mlperf-pilot run --holder" in info.value.message
        assert "--results-dir" in (info.value.hint or "")
    finally:
        holder.kill()  # SIGKILL: no cleanup, the kernel drops the lock
        holder.wait()
    with ResultsLock(folder, "third") as lock:
        assert json.loads((folder / HOLDER_FILE).read_text())["command"] == "third"
        assert lock.folder == folder
    assert not (folder / HOLDER_FILE).exists()


def test_interrupted_says_what_was_stopped_and_exits_128_plus_the_signal() -> None:
    bare = Interrupted(signal.SIGTERM)
    assert bare.exit_code == 143 and bare.name == "SIGTERM"
    assert "no LoadGen test was running" in bare.message
    assert isinstance(Interrupted(signal.SIGINT), KeyboardInterrupt)
    assert Interrupted(signal.SIGINT).exit_code == 130

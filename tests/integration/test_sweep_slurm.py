"""`mlperf-pilot sweep` on a real Slurm (Debian's slurmctld + slurmd + munge, one node on
127.0.0.1 in a loopback-only network namespace: tests/servers/slurm_cluster.py), through
submitit: a 4-point matrix of the demo (batch size x threads) as one job array, every
result in the store, a point killed mid-run (scancel) FAILED with Slurm's reason, and
`sweep resume` rerunning only it; a point past its time limit FAILED with TIMEOUT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.demo]

VICTIM = "p003"  # the point scancelled mid-run (its runs are long enough to catch)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("submitit", reason="needs submitit (pip install 'mlperf-pilot[slurm]')")
    from servers.slurm_cluster import ClusterUnavailable, SlurmCluster, why_unavailable

    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        pytest.skip(f"a Slurm cluster cannot run here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


SWEEP = """\
name: demo-slurm
base:
  model: efficientnet-lite0-demo
  scenarios: [Offline]
  modes: [performance]
  test_duration_ms: 300
matrix:
  sut.max_batch_size: [1, 4]
  sut.threads: [1, 2]
  include:
    - {sut.max_batch_size: 4, sut.threads: 2, test_duration_ms: 8000}
executor: {kind: slurm, partition: debug, time_limit: "10:00"}
"""


def _state(tmp_path: Path):
    from mlperf_pilot.sweep.state import load_state

    folders = list((tmp_path / "results" / "sweeps").iterdir())
    assert len(folders) == 1
    return load_state(folders[0].name, tmp_path / "results")


def test_sweep_array_on_slurm_kill_and_resume(slurm, cli, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mlperf_pilot.results.store import open_store
    from mlperf_pilot.sweep.job import PID_FILE

    for key, value in slurm.env().items():  # sbatch/squeue/scancel reach the cluster
        if key in {"PATH", "SLURM_CONF"}:
            monkeypatch.setenv(key, value)
    (tmp_path / "sweep.yaml").write_text(SWEEP)

    started = time.monotonic()
    submitted = cli("sweep", "run", "sweep.yaml", "--max-parallel", "2")
    assert submitted.code == 0, submitted.text
    state = _state(tmp_path)
    sweep_id = state.sweep_id
    ids = [p.job_id for p in state.points]
    # one job array: <array id>_<task> for the four points
    assert len({i.split("_")[0] for i in ids}) == 1 and len(ids) == 4, ids
    assert [p.values for p in state.points][3] == {
        "sut.max_batch_size": 4, "sut.threads": 2, "test_duration_ms": 8000}

    # kill the long point mid-run: once its run process started, scancel its job
    victim = next(p for p in state.points if p.id == VICTIM)
    pid_file = victim.attempt_dir(state.folder) / PID_FILE
    deadline = time.monotonic() + 240
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the point's job never started"
        time.sleep(0.5)
    time.sleep(4)  # into the run (loading, warm-up or the LoadGen test)
    slurm.client("scancel", victim.job_id)

    deadline = time.monotonic() + 300
    while True:
        shown = cli("sweep", "status", sweep_id)
        assert shown.code == 0, shown.text
        state = _state(tmp_path)
        if state.settled:
            break
        assert time.monotonic() < deadline, shown.text
        time.sleep(2)
    first_pass_s = time.monotonic() - started
    by_id = {p.id: p for p in state.points}
    assert {i: p.status for i, p in by_id.items()} == {
        "p000": "done", "p001": "done", "p002": "done", VICTIM: "failed"}, shown.text
    reason = by_id[VICTIM].reason or ""
    assert "CANCELLED" in reason, reason  # Slurm's word
    assert "run.log" in reason, reason  # and where its log is
    assert "failed" in shown.out and VICTIM in shown.out

    store = open_store(tmp_path / "results" / "results.sqlite")
    done_tests = {t.test_id: t for t in store.select(kind="run")}
    for pid in ("p000", "p001", "p002"):  # one test each (and any automatic rerun's
        kept = [done_tests[i] for i in by_id[pid].test_ids if i in done_tests]  # attempts)
        assert len(kept) == 1, by_id[pid].test_ids
        assert kept[0].record.status.value == "VALID", kept[0].record.reasons
        assert f"/{pid}/attempt-1/results/" in kept[0].record.log_dir
    sweep_rows = store.select(kind="sweep")
    assert len(sweep_rows) == 1
    failed = sweep_rows[0].record
    assert failed.status.value == "FAILED" and VICTIM in failed.reasons[0]
    assert "CANCELLED" in failed.reasons[0]

    # resume: only the killed point runs again (a shorter run this time is not allowed:
    # it reruns the point as it was), the finished ones keep their single attempt
    resumed = cli("sweep", "resume", sweep_id, "--wait")
    assert resumed.code == 0, resumed.text
    assert f"rerunning {VICTIM}" in resumed.err
    state = _state(tmp_path)
    assert {p.id: (p.status, p.attempts) for p in state.points} == {
        "p000": ("done", 1), "p001": ("done", 1), "p002": ("done", 1), VICTIM: ("done", 2)}
    runs = store.select(kind="run")
    points_recorded = {p.id for p in state.points
                       for t in runs if t.test_id in p.test_ids}
    assert points_recorded == {"p000", "p001", "p002", VICTIM}
    again = cli("sweep", "resume", sweep_id)
    assert again.code == 0 and "nothing to rerun" in again.err
    print(f"slurm sweep: first pass {first_pass_s:.1f} s")


def test_a_point_past_its_time_limit_is_failed_with_slurms_timeout(
        slurm, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logits_model: Path,
        colour_imagenet: Path) -> None:
    """A job past --time-limit: Slurm's TIMEOUT (its SIGTERM stops the run's test, which
    says so), not submitit's requeue signal killing the run early (~90 s: Slurm checks
    time limits every 30 s)."""
    from mlperf_pilot.results.store import open_store

    for key, value in slurm.env().items():
        if key in {"PATH", "SLURM_CONF"}:
            monkeypatch.setenv(key, value)
    (tmp_path / "sweep.yaml").write_text(f"""\
name: too-long
base:
  scenarios: [Offline]
  modes: [performance]
  test_duration_ms: 600000
  sut: {{model_path: {logits_model}}}
  dataset_path: {colour_imagenet}
matrix: {{sut.max_batch_size: [2]}}
""")
    ran = cli("sweep", "run", "sweep.yaml", "--executor", "slurm", "--time-limit", "1",
              "--wait")
    assert ran.code == 1, ran.text
    state = _state(tmp_path)
    point = state.points[0]
    assert point.status == "failed"
    assert "slurm: TIMEOUT, reason TimeLimit" in (point.reason or ""), point.reason
    assert "interrupted by SIGTERM" in (point.reason or ""), point.reason
    assert point.log and Path(point.log).exists()
    failed = open_store(tmp_path / "results" / "results.sqlite").select(kind="sweep")
    assert len(failed) == 1 and "TIMEOUT" in failed[0].record.reasons[0]

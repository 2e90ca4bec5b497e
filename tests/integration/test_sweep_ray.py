"""`sweep run --executor ray`: a 2-point sweep of a tiny ONNX model (tests/builders.py)
as Ray tasks (max_calls=1: one LoadGen test per worker process) on a local Ray instance
bound to 127.0.0.1; both points' results in the sweep's store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sweeps import write_tiny_sweep

pytestmark = pytest.mark.ray


def test_two_points_through_ray(cli, tmp_path: Path, logits_model: Path,
                                colour_imagenet: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'mlperf-pilot[ray]')")
    from mlperf_pilot.results.store import open_store
    from mlperf_pilot.sweep.state import load_state

    write_tiny_sweep(tmp_path, "tiny-ray", logits_model, colour_imagenet,
                     {"sut.max_batch_size": [1, 4]})
    ran = cli("sweep", "run", "sweep.yaml", "--executor", "ray", "--max-parallel", "2")
    assert ran.code == 0, ran.text
    sweep_id = re.search(r"sweep (tiny-ray-\S+):", ran.err).group(1)  # type: ignore[union-attr]
    state = load_state(sweep_id, tmp_path / "results")
    assert state.executor.kind == "ray"
    assert [(p.status, p.attempts) for p in state.points] == [("done", 1), ("done", 1)]
    assert all(p.job_id and p.job_id.startswith("ray:") for p in state.points)
    with open_store(Path(state.store)) as store:
        for point in state.points:
            tests = [store.get(test_id) for test_id in point.test_ids]
            assert tests and all(t.record.status.value == "VALID" for t in tests)
            assert all(f"/{point.id}/attempt-1/" in t.record.log_dir for t in tests)
    pids = {(p.attempt_dir(state.folder) / "outcome.json").read_text() for p in state.points}
    assert len(pids) == 2

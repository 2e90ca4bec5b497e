from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlperf_pilot.accuracy import GroundTruth, compute_accuracy
from mlperf_pilot.accuracy.imagenet import top1
from mlperf_pilot.errors import AccuracyError


def _log(path: Path, entries: list[tuple[int, bytes]]) -> Path:
    """Write an accuracy log in LoadGen's exact layout (one entry per line)."""
    lines = [f'{{ "seq_id" : {i}, "qsl_idx" : {q}, "data" : "{d.hex().upper()}" }}'
             for i, (q, d) in enumerate(entries)]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return path


def f32(value: float) -> bytes:
    return np.array([value], np.float32).tobytes()


def test_top1_line_is_the_reference_format(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5])
    log = _log(tmp_path / "a.json", [(0, f32(3)), (1, f32(2)), (2, f32(4)), (3, f32(1)),
                                     (4, f32(9))])
    result = top1(log, labels)
    assert result.line() == "accuracy=60.000%, good=3, total=5"


def test_duplicates_count_once_by_first_occurrence(tmp_path: Path) -> None:
    labels = np.array([7, 8])
    log = _log(tmp_path / "a.json", [(0, f32(7)), (0, f32(1)), (1, f32(0)), (1, f32(8))])
    result = top1(log, labels)
    assert (result.good, result.total) == (1, 2)


def test_only_the_first_element_counts_and_dtypes(tmp_path: Path) -> None:
    labels = np.array([2])
    two_values = np.array([2, 99], np.float32).tobytes()
    assert top1(_log(tmp_path / "a.json", [(0, two_values)]), labels).good == 1
    as_int64 = np.array([2], np.int64).tobytes()
    assert top1(_log(tmp_path / "b.json", [(0, as_int64)]), labels, dtype="int64").good == 1
    with pytest.raises(AccuracyError, match="unknown dtype"):
        top1(tmp_path / "b.json", labels, dtype="int8")


def test_empty_responses_are_wrong_and_counted(tmp_path: Path) -> None:
    labels = np.array([1, 1])
    result = top1(_log(tmp_path / "a.json", [(0, b""), (1, f32(1))]), labels)
    assert (result.good, result.total, result.empty) == (1, 2, 1)


def test_bad_logs_are_accuracy_errors(tmp_path: Path) -> None:
    truncated = tmp_path / "t.json"
    truncated.write_text('[\n{ "seq_id" : 0, "qsl_idx" : 0, "data" : "0000')
    with pytest.raises(AccuracyError, match="not valid JSON"):
        top1(truncated, np.array([0]))
    with pytest.raises(AccuracyError, match="does not exist"):
        top1(tmp_path / "absent.json", np.array([0]))
    out_of_range = _log(tmp_path / "o.json", [(5, f32(1))])
    with pytest.raises(AccuracyError, match="qsl_idx 5"):
        top1(out_of_range, np.array([0, 1]))


def test_compute_accuracy_text_ends_with_a_newline(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.json", [(0, f32(0))])
    result = compute_accuracy("top1", log, GroundTruth(labels=np.array([0])))
    assert result.text == "accuracy=100.000%, good=1, total=1\n" and result.value == 100.0
    assert json.loads(log.read_text())[0]["data"] == "00000000"


def test_nan_and_infinite_answers_are_wrong_not_a_crash(tmp_path: Path) -> None:
    labels = np.array([1, 2, 3])
    log = _log(tmp_path / "a.json", [(0, f32(float("nan"))), (1, f32(float("inf"))),
                                     (2, f32(3))])
    result = top1(log, labels)
    assert result.line() == "accuracy=33.333%, good=1, total=3"

"""The real LoadGen drives a ``BatchingSut`` over a custom numpy ``Predictor`` (no
backend, no model file): the SUT base is all a new kind of SUT needs to be answered by
LoadGen, failures included. LoadGen runs in this process with settings set directly
(no ``FromConfig``, so no per-process config state is left behind)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mlperf_pilot.accuracy.log import read_accuracy_log
from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.config import SutConfig
from mlperf_pilot.datasets.prepared import ArrayDataset
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.loadgen.logs import read_result
from mlperf_pilot.loadgen.run import run_loadgen
from mlperf_pilot.sut.base import BatchingSut, Sut

lg = pytest.importorskip("mlperf_loadgen")

COUNT = 64
CLASSES = 16
SHIFT = 5  # the model: sample i (one-hot at i % CLASSES) is class (i + SHIFT) % CLASSES
WEIGHTS = np.roll(np.eye(CLASSES, dtype=np.float32), SHIFT, axis=1)


class ShiftPredictor:
    """A linear classifier in numpy; a sample holding 99 makes its batch raise."""

    thread_safe = True
    fixed_batch_size = None

    def predict(self, batch: np.ndarray) -> Sequence[np.ndarray]:
        if (batch == 99).any():
            raise ValueError("input out of range")
        return [batch @ WEIGHTS]


def open_sut(samples: np.ndarray, **config: object) -> tuple[BatchingSut, SampleStore]:
    store = SampleStore(ArrayDataset(samples, np.zeros(len(samples), np.int64)))
    decoder = create_decoder(PostprocessSpec(kind="argmax", outputs=("logits",)))
    sut = BatchingSut(ShiftPredictor(), store, decoder, SutConfig(**config))  # type: ignore[arg-type]
    assert isinstance(sut, Sut)
    return sut, store


def settings_for(scenario: str, mode: str, **values: float) -> object:
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = getattr(lg.TestMode, mode)
    for key, value in values.items():
        setattr(settings, key, value)
    return settings


def samples_with_one_bad(bad: int) -> np.ndarray:
    samples = np.eye(CLASSES, dtype=np.float32)[np.arange(COUNT) % CLASSES]
    samples[bad, 0] = 99.0
    return samples


def test_offline_accuracy_every_sample_answered_right_and_the_failure_empty(
    tmp_path: Path,
) -> None:
    sut, store = open_sut(samples_with_one_bad(7), max_batch_size=8, workers=2,
                          on_error="continue")
    settings = settings_for("Offline", "AccuracyOnly", offline_expected_qps=10_000,
                            min_duration_ms=0, min_query_count=1)
    with sut:
        run_loadgen(sut, store, settings, tmp_path, performance_sample_count=COUNT)
    entries = {e.qsl_idx: e.data for e in read_accuracy_log(tmp_path / "mlperf_log_accuracy.json")}
    assert sorted(entries) == list(range(COUNT))
    empty = {i for i, data in entries.items() if not data}
    # the failed batch (sample 7 and whatever shared its batch, at most 8) was answered
    # empty, never with a made-up class; every other sample got its right class
    assert 7 in empty and len(empty) <= 8
    good = {i: float(np.frombuffer(data, np.float32)[0]) for i, data in entries.items() if data}
    assert good == {i: float((i + SHIFT) % CLASSES) for i in range(COUNT) if i not in empty}
    stats = sut.stats
    assert (stats.issued, stats.failed, stats.completed) == (COUNT, len(empty), COUNT - len(empty))
    assert stats.first_error == "ValueError: input out of range"
    assert 7 in stats.failed_indices


def test_server_queries_are_batched_and_all_answered(tmp_path: Path) -> None:
    sut, store = open_sut(np.eye(CLASSES, dtype=np.float32)[np.arange(COUNT) % CLASSES],
                          max_batch_size=4, workers=2, batch_timeout_us=2_000)
    settings = settings_for("Server", "PerformanceOnly", server_target_qps=1000,
                            server_target_latency_ns=100_000_000, min_duration_ms=300,
                            min_query_count=300)
    with sut:
        run_loadgen(sut, store, settings, tmp_path, performance_sample_count=COUNT)
    result = read_result(tmp_path)
    assert result.scenario == "Server" and result.num_errors == 0
    stats = sut.stats
    assert stats.issued >= 300 and stats.failed == 0
    assert stats.completed == stats.issued
    assert stats.batches < stats.issued  # queries arriving within 2 ms shared a batch
    assert result.completed_samples_per_sec and result.completed_samples_per_sec > 0

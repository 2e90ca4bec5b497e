"""The batching SUT's own contract, driven directly (LoadGen runs are in integration/):
what it groups into batches and what it answers, by recording the completions."""

from __future__ import annotations

import threading
import time

import numpy as np

from mlperf_pilot.backends.base import Backend, LoadOptions
from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.config import Device, LocalSutConfig
from mlperf_pilot.datasets.prepared import ArrayDataset
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.sut.local import LocalSut


class SumBackend(Backend):
    """A real (numpy) model: the class of a sample is its first value; records batches."""

    name = "sum"
    formats = ("none",)
    devices = (Device.CPU,)
    package = None
    import_name = None

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def load(self, options: LoadOptions) -> None:
        return None

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        self.batch_sizes.append(batch.shape[0])
        if (batch[:, 0] < 0).any():
            raise ValueError("negative input")
        return [batch[:, 0].astype(np.int64)]

    @property
    def device_in_use(self) -> str:
        return "numpy"


class Completions:
    def __init__(self) -> None:
        self.answers: dict[int, bytes] = {}
        self.calls = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.expected = 0

    def response(self, rid: int, ptr: int, size: int) -> tuple[int, bytes]:
        import ctypes

        return rid, ctypes.string_at(ptr, size) if size else b""

    def complete(self, responses: list[tuple[int, bytes]]) -> None:
        with self.lock:
            self.calls += 1
            self.answers.update(responses)
            if len(self.answers) >= self.expected:
                self.done.set()


def make_sut(samples: np.ndarray, **settings: object) -> tuple[LocalSut, SumBackend, Completions]:
    store = SampleStore(ArrayDataset(samples, np.zeros(len(samples), np.int64)))
    store.load(list(range(len(samples))))
    backend = SumBackend()
    decoder = create_decoder(PostprocessSpec(kind="class-index", outputs=("x",)))
    completions = Completions()
    sut = LocalSut(backend, store, decoder, LocalSutConfig(**settings),  # type: ignore[arg-type]
                   completion=(completions.response, completions.complete))
    return sut, backend, completions


def classes(completions: Completions) -> dict[int, float]:
    return {rid: float(np.frombuffer(data, np.float32)[0]) if data else float("nan")
            for rid, data in completions.answers.items()}


def test_one_large_query_is_split_into_batches_and_every_answer_is_right() -> None:
    samples = np.arange(20, dtype=np.float32).reshape(20, 1).repeat(3, axis=1)
    sut, backend, completions = make_sut(samples, max_batch_size=8)
    completions.expected = 20
    with sut:
        sut.issue(list(range(100, 120)), list(range(20))[::-1])
        assert completions.done.wait(5)
    assert backend.batch_sizes == [8, 8, 4]
    assert completions.calls == 3  # one QuerySamplesComplete per batch
    # response id 100+k carries sample 19-k's class
    assert classes(completions) == {100 + k: float(19 - k) for k in range(20)}


def test_small_queries_queued_together_form_one_batch() -> None:
    samples = np.arange(6, dtype=np.float32).reshape(6, 1)
    sut, backend, completions = make_sut(samples, max_batch_size=4, batch_timeout_us=200_000)
    completions.expected = 4
    with sut:
        for k in range(4):
            sut.issue([k], [k])
        assert completions.done.wait(5)
    assert backend.batch_sizes == [4]
    assert classes(completions) == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}


def test_without_a_timeout_a_lone_sample_runs_at_once() -> None:
    samples = np.ones((2, 1), np.float32)
    sut, backend, completions = make_sut(samples, max_batch_size=8)
    completions.expected = 1
    with sut:
        started = time.perf_counter()
        sut.issue([5], [1])
        assert completions.done.wait(5)
        assert time.perf_counter() - started < 0.5
    assert backend.batch_sizes == [1]


def test_a_failed_batch_is_counted_and_answered_empty() -> None:
    samples = np.array([[1.0], [-1.0], [2.0], [3.0]], np.float32)
    sut, _, completions = make_sut(samples, max_batch_size=1, on_error="continue")
    completions.expected = 4
    with sut:
        sut.issue([10, 11, 12, 13], [0, 1, 2, 3])
        assert completions.done.wait(5)
    answers = classes(completions)
    assert answers[10] == 1.0 and answers[12] == 2.0 and answers[13] == 3.0
    assert np.isnan(answers[11])  # no made-up class for the failed sample
    assert sut.stats.failed == 1 and sut.stats.completed == 3
    assert sut.stats.first_error == "ValueError: negative input"
    assert sut.stats.failed_indices == [1]


def test_on_error_stop_skips_later_samples() -> None:
    samples = np.array([[-1.0], [2.0], [3.0]], np.float32)
    sut, backend, completions = make_sut(samples, max_batch_size=1)
    completions.expected = 3
    with sut:
        sut.issue([0, 1, 2], [0, 1, 2])
        assert completions.done.wait(5)
    assert backend.batch_sizes == [1]  # only the failing batch ran
    assert sut.stats.failed == 3 and sut.stats.completed == 0


class FloatBackend(SumBackend):
    """Answers each sample's first value as a float class (NaN stays NaN)."""

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        self.batch_sizes.append(batch.shape[0])
        return [batch[:, :1].astype(np.float32)]


def test_nan_answers_are_failures_with_empty_responses() -> None:
    samples = np.array([[1.0], [np.nan], [2.0], [np.nan]], np.float32)
    store = SampleStore(ArrayDataset(samples, np.zeros(4, np.int64)))
    store.load(list(range(4)))
    completions = Completions()
    completions.expected = 4
    sut = LocalSut(FloatBackend(), store,
                   create_decoder(PostprocessSpec(kind="class-index", outputs=("x",))),
                   LocalSutConfig(max_batch_size=4, on_error="continue"),
                   completion=(completions.response, completions.complete))
    with sut:
        sut.issue([10, 11, 12, 13], [0, 1, 2, 3])
        assert completions.done.wait(5)
    answers = classes(completions)
    assert answers[10] == 1.0 and answers[12] == 2.0
    assert np.isnan(answers[11]) and np.isnan(answers[13])  # empty: no made-up class
    stats = sut.stats
    assert (stats.failed, stats.nan, stats.completed) == (2, 2, 2)
    assert stats.failed_indices == [1, 3]
    assert stats.reasons() == ["2 sample(s) answered NaN"]


def test_failure_reasons_keep_nan_and_errors_apart() -> None:
    from mlperf_pilot.sut.local import NAN_ERROR, SutStats

    stats = SutStats(failed=5, nan=2, first_error=NAN_ERROR)
    stats.error_counts.update({NAN_ERROR: 2, "ValueError: negative input": 3})
    assert stats.reasons() == ["2 sample(s) answered NaN",
                               "3 sample(s) failed: ValueError: negative input"]
    assert SutStats().reasons() == []


def test_the_local_sut_is_a_batching_sut_that_describes_its_backend() -> None:
    from mlperf_pilot.sut.base import BatchingSut, Sut
    from mlperf_pilot.sut.local import BackendPredictor

    sut, backend, _ = make_sut(np.ones((2, 1), np.float32), max_batch_size=4, workers=2)
    assert isinstance(sut, BatchingSut) and isinstance(sut, Sut)
    assert isinstance(sut.predictor, BackendPredictor)
    # the predictor adds no call of its own: its predict is the backend's bound method
    assert sut.predictor.predict == backend.predict
    assert sut.predictor.thread_safe and sut.predictor.fixed_batch_size is None
    description = sut.describe()
    assert (description.kind, description.name, description.version,
            description.device_in_use) == ("local", "sum", None, "numpy")
    assert description.details["max_batch_size"] == 4 and description.details["workers"] == 2

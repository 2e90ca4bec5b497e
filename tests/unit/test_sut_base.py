"""What every SUT inherits (``sut/base.py``), driven with a small real numpy model behind
the ``Predictor`` protocol and recorded completions (LoadGen runs: integration/)."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mlperf_pilot.catalog.cards import PostprocessSpec
from mlperf_pilot.config import SutConfig
from mlperf_pilot.datasets.prepared import ArrayDataset
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.sut.base import (
    NAN_ERROR,
    SKIPPED_ERROR,
    BatchingSut,
    Responder,
    Sut,
    SutDescription,
    SutStats,
)

CLASSES = 10
# the model: a fixed permutation of the classes; sample i is one-hot at i % CLASSES, so
# its answer is PERMUTATION[i % CLASSES]
PERMUTATION = np.random.default_rng(7).permutation(CLASSES)
WEIGHTS = np.eye(CLASSES, dtype=np.float32)[PERMUTATION]


def expected_class(index: int) -> float:
    return float(PERMUTATION[index % CLASSES])


class LinearPredictor:
    """A linear classifier: sqrt of the inputs (NaN where negative) times WEIGHTS; a
    sample holding 99 makes the batch raise. Records every batch size."""

    thread_safe = True
    fixed_batch_size: int | None = None

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.closed = False

    def predict(self, batch: np.ndarray) -> Sequence[np.ndarray]:
        self.batch_sizes.append(batch.shape[0])
        if (batch == 99).any():
            raise ValueError("input out of range")
        with np.errstate(invalid="ignore"):
            return [np.sqrt(batch) @ WEIGHTS]

    def close(self) -> None:
        self.closed = True


class Recorder:
    """The LoadGen completion pair, recording what each sample was answered."""

    def __init__(self, expected: int) -> None:
        self.answers: dict[int, bytes] = {}
        self.calls = 0
        self.expected = expected
        self.lock = threading.Lock()
        self.done = threading.Event()

    def response(self, rid: int, ptr: int, size: int) -> tuple[int, bytes]:
        return rid, ctypes.string_at(ptr, size) if size else b""

    def complete(self, responses: list[tuple[int, bytes]]) -> None:
        with self.lock:
            self.calls += 1
            for rid, data in responses:
                assert rid not in self.answers, f"sample {rid} answered twice"
                self.answers[rid] = data
            if len(self.answers) >= self.expected:
                self.done.set()

    def classes(self) -> dict[int, float | None]:
        return {rid: float(np.frombuffer(data, np.float32)[0]) if data else None
                for rid, data in self.answers.items()}


def one_hot_samples(count: int) -> np.ndarray:
    return np.eye(CLASSES, dtype=np.float32)[np.arange(count) % CLASSES]


def make(samples: np.ndarray, predictor: object | None = None, expected: int | None = None,
         **config: object) -> tuple[BatchingSut, LinearPredictor, Recorder]:
    store = SampleStore(ArrayDataset(samples, np.zeros(len(samples), np.int64)))
    store.load(list(range(len(samples))))
    model = predictor or LinearPredictor()
    recorder = Recorder(len(samples) if expected is None else expected)
    decoder = create_decoder(PostprocessSpec(kind="argmax", outputs=("logits",)))
    sut = BatchingSut(model, store, decoder, SutConfig(**config),  # type: ignore[arg-type]
                      completion=(recorder.response, recorder.complete))
    return sut, model, recorder  # type: ignore[return-value]


def test_a_batching_sut_is_a_sut_and_describes_its_batching() -> None:
    sut, model, _ = make(one_hot_samples(4), max_batch_size=4, workers=2,
                         batch_timeout_us=500)
    assert isinstance(sut, Sut)
    assert not isinstance(object(), Sut)
    description = sut.describe()
    assert isinstance(description, SutDescription)
    assert (description.kind, description.name) == ("batching", "LinearPredictor")
    assert description.details == {"max_batch_size": 4, "workers": 2,
                                   "batch_timeout_us": 500, "on_error": "stop"}
    assert SutDescription.model_validate_json(description.model_dump_json()) == description
    sut.close()
    assert model.closed


def test_a_fixed_batch_size_caps_the_batches() -> None:
    model = LinearPredictor()
    model.fixed_batch_size = 3
    sut, _, recorder = make(one_hot_samples(7), model, max_batch_size=8)
    assert sut.max_batch_size == 3
    with sut:
        sut.issue(list(range(7)), list(range(7)))
        assert recorder.done.wait(5)
    assert sorted(model.batch_sizes) == [1, 3, 3]


def test_an_offline_query_runs_in_full_batches_with_every_answer_right() -> None:
    count, repeats = 30, 4  # Offline repeats the loaded samples to fill its query
    sut, model, recorder = make(one_hot_samples(count), expected=count * repeats,
                                max_batch_size=8, workers=2)
    indices = [i % count for i in range(count * repeats)][::-1]
    with sut:
        sut.issue(list(range(1000, 1000 + len(indices))), indices)
        assert recorder.done.wait(10)
    assert sum(model.batch_sizes) == count * repeats
    assert sorted(model.batch_sizes) == [8] * 15  # 120 samples: full batches only
    assert recorder.calls == 15  # one completion per batch
    answers = recorder.classes()
    assert answers == {1000 + k: expected_class(i) for k, i in enumerate(indices)}
    stats = sut.stats
    assert (stats.issued, stats.completed, stats.failed, stats.batches) == (120, 120, 0, 15)
    assert stats.predict_s > 0


def test_server_shaped_queries_from_another_thread_are_batched_and_answered() -> None:
    sut, model, recorder = make(one_hot_samples(40), max_batch_size=4,
                                batch_timeout_us=20_000)

    def loadgen() -> None:  # single-sample queries arriving over time, as in Server
        for k in range(40):
            sut.issue([500 + k], [k])
            if k % 8 == 7:
                time.sleep(0.002)

    with sut:
        issuer = threading.Thread(target=loadgen)
        issuer.start()
        issuer.join()
        assert recorder.done.wait(10)
    assert recorder.classes() == {500 + k: expected_class(k) for k in range(40)}
    assert sum(model.batch_sizes) == 40
    assert max(model.batch_sizes) == 4
    assert len(model.batch_sizes) < 40  # queries were batched together
    assert sut.stats.completed == 40 and sut.stats.issued == 40


def test_failures_and_nan_are_counted_and_answered_empty() -> None:
    samples = one_hot_samples(6)
    samples[2, 0] = 99.0  # its batch raises
    samples[4, 1] = -1.0  # sqrt: NaN in its outputs
    sut, _, recorder = make(samples, max_batch_size=1, on_error="continue")
    with sut:
        sut.issue([10, 11, 12, 13, 14, 15], list(range(6)))
        assert recorder.done.wait(5)
    answers = recorder.classes()
    assert answers[12] is None and answers[14] is None  # never a made-up class
    assert {k: answers[10 + k] for k in (0, 1, 3, 5)} == {
        k: expected_class(k) for k in (0, 1, 3, 5)}
    stats = sut.stats
    assert (stats.failed, stats.nan, stats.completed) == (2, 1, 4)
    assert stats.first_error == "ValueError: input out of range"
    assert sorted(stats.failed_indices) == [2, 4]
    assert stats.reasons() == ["1 sample(s) answered NaN",
                               "1 sample(s) failed: ValueError: input out of range"]


def test_nan_rows_of_a_batch_fail_alone() -> None:
    samples = one_hot_samples(4)
    samples[1, 3] = -4.0
    sut, _, recorder = make(samples, max_batch_size=4, on_error="continue")
    with sut:
        sut.issue([0, 1, 2, 3], [0, 1, 2, 3])
        assert recorder.done.wait(5)
    answers = recorder.classes()
    assert answers[1] is None
    assert [answers[k] for k in (0, 2, 3)] == [expected_class(k) for k in (0, 2, 3)]
    assert sut.stats.error_counts == {NAN_ERROR: 1}
    assert (sut.stats.completed, sut.stats.batches) == (3, 1)


def test_on_error_stop_answers_the_rest_without_running_it() -> None:
    samples = one_hot_samples(5)
    samples[1, 0] = 99.0
    sut, model, recorder = make(samples, max_batch_size=1)
    with sut:
        sut.issue([0, 1, 2, 3, 4], list(range(5)))
        assert recorder.done.wait(5)
    assert model.batch_sizes == [1, 1]  # sample 0, then the failing one; no more
    assert recorder.classes()[0] == expected_class(0)
    assert all(recorder.classes()[k] is None for k in (1, 2, 3, 4))
    stats = sut.stats
    assert (stats.failed, stats.completed) == (4, 1)
    assert stats.error_counts == {"ValueError: input out of range": 1, SKIPPED_ERROR: 3}
    assert stats.failed_indices == [1]  # the skipped ones did not fail themselves


def test_a_new_start_forgets_the_last_test_in_place() -> None:
    samples = one_hot_samples(3)
    samples[0, 0] = 99.0
    sut, _, recorder = make(samples, max_batch_size=1)
    stats = sut.stats
    with sut:
        sut.issue([0, 1, 2], [0, 1, 2])
        assert recorder.done.wait(5)
    assert stats.failed == 3 and sut.responder.stopping
    recorder.answers.clear()
    recorder.done.clear()
    recorder.expected = 2
    with sut:
        sut.issue([5, 6], [1, 2])
        assert recorder.done.wait(5)
    assert sut.stats is stats  # a monitor holding the stats sees the new test
    assert (stats.failed, stats.completed, stats.issued) == (0, 2, 2)
    assert stats.first_error is None


class SlowPredictor(LinearPredictor):
    """Records how many calls ran at once. A thread-safe one holds each call until two
    are in flight (up to 2 s); the other holds each call 10 ms."""

    def __init__(self, thread_safe: bool) -> None:
        super().__init__()
        self.thread_safe = thread_safe  # type: ignore[misc]
        self.running = 0
        self.most = 0
        self.count_lock = threading.Lock()
        self.overlap = threading.Event()

    def predict(self, batch: np.ndarray) -> Sequence[np.ndarray]:
        with self.count_lock:
            self.running += 1
            self.most = max(self.most, self.running)
            if self.running >= 2:
                self.overlap.set()
        try:
            if self.thread_safe:
                self.overlap.wait(timeout=2)
            else:
                time.sleep(0.01)
            return super().predict(batch)
        finally:
            with self.count_lock:
                self.running -= 1


def test_a_predictor_that_is_not_thread_safe_runs_one_call_at_a_time() -> None:
    most = {}
    for safe in (False, True):
        model = SlowPredictor(thread_safe=safe)
        sut, _, recorder = make(one_hot_samples(8), model, max_batch_size=1, workers=4)
        with sut:
            sut.issue(list(range(8)), list(range(8)))
            assert recorder.done.wait(20)
        assert recorder.classes() == {k: expected_class(k) for k in range(8)}
        most[safe] = model.most
    assert most[False] == 1  # serialised
    assert most[True] >= 2  # the same SUT lets a thread-safe predictor run in parallel


class AsyncSut:
    """A SUT without the batcher whose answers arrive later on other threads (as network
    responses would): the Responder does all the answering and accounting."""

    def __init__(self, store: SampleStore, responder: Responder) -> None:
        self.store = store
        self.responder = responder
        self.stats = responder.stats
        self.max_batch_size = 1
        self._pool: ThreadPoolExecutor | None = None

    def issue(self, ids: Sequence[int], indices: Sequence[int]) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        self.stats.issued += len(idx)
        assert self._pool is not None
        future = self._pool.submit(self._call, idx)
        future.add_done_callback(lambda done: self._answer(ids, idx, done))

    def _call(self, idx: np.ndarray) -> Sequence[np.ndarray]:
        return LinearPredictor().predict(self.store.gather(idx))

    def _answer(self, ids: Sequence[int], idx: np.ndarray, done: object) -> None:
        error = done.exception()  # type: ignore[attr-defined]
        if error is not None:
            self.responder.fail(ids, idx, error)
        elif self.responder.stopping:
            self.responder.skip(ids, idx)
        else:
            self.responder.respond(ids, idx, done.result())  # type: ignore[attr-defined]

    def flush(self) -> None:
        pass

    def start(self) -> None:
        self.responder.reset()
        self._pool = ThreadPoolExecutor(3)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def describe(self) -> SutDescription:
        return SutDescription(kind="async-test", name="pool", device_in_use="threads")

    def __enter__(self) -> AsyncSut:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_the_responder_serves_a_sut_that_answers_asynchronously() -> None:
    samples = one_hot_samples(12)
    samples[5, 2] = 99.0
    store = SampleStore(ArrayDataset(samples, np.zeros(12, np.int64)))
    store.load(list(range(12)))
    recorder = Recorder(12)
    decoder = create_decoder(PostprocessSpec(kind="argmax", outputs=("logits",)))
    responder = Responder(decoder, on_error="continue",
                          completion=(recorder.response, recorder.complete))
    sut = AsyncSut(store, responder)
    assert isinstance(sut, Sut)
    with sut:
        for k in range(12):
            sut.issue([k + 100], [k])
        assert recorder.done.wait(5)
    answers = recorder.classes()
    assert answers[105] is None
    assert {k: answers[k + 100] for k in range(12) if k != 5} == {
        k: expected_class(k) for k in range(12) if k != 5}
    assert (sut.stats.completed, sut.stats.failed, sut.stats.batches) == (11, 1, 11)
    assert sut.stats.first_error == "ValueError: input out of range"


def test_failure_counts_keep_their_first_indices_only() -> None:
    recorder = Recorder(0)
    responder = Responder(create_decoder(PostprocessSpec(kind="argmax", outputs=("x",))),
                          completion=(recorder.response, recorder.complete))
    responder.count_failed(list(range(900)), "E: one")
    responder.count_failed(np.arange(900, 1500), "E: two")
    stats = responder.stats
    assert stats.failed == 1500 and len(stats.failed_indices) == 1000
    assert stats.failed_indices[-1] == 999
    assert stats.error_counts == {"E: one": 900, "E: two": 600}
    assert stats.first_error == "E: one" and responder.stopping
    assert SutStats().reasons() == []

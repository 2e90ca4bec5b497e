"""What every system under test is and shares: the :class:`Sut` protocol, the answering
and failure accounting (:class:`Responder`), the :class:`Predictor` protocol and the
batcher (:class:`BatchingSut`).

**The contract** (:class:`Sut`) is LoadGen's FastSUT: ``issue(ids, indices)`` queues the
work and returns at once (it runs on LoadGen's thread), ``flush()``; plus ``start``/
``stop`` (a context manager), live ``stats`` and ``describe()`` for the run record.

**Answering** (:class:`Responder`): every issued sample is answered exactly once, and
never with a made-up result. A decoded batch is completed with one QuerySamplesComplete
whose responses point into the batch's one response buffer (kept alive until the call
returns). A failed sample is counted, its error kept (the first one is the run's
reason), and it is completed with an empty (size 0) response only because LoadGen has no
other way to end a sample; a sample whose outputs hold NaN is a failure too ("answered
NaN"). With ``on_error="stop"`` every later sample is completed the same way without
running it, so an INVALID run ends quickly. The responder needs no batcher: a SUT whose
answers arrive asynchronously (network responses) calls ``respond``/``fail`` from
wherever they arrive.

**The batcher** (:class:`BatchingSut`): worker threads take up to ``max_batch_size``
queued samples at a time — from one large Offline query (planned by
``SampleStore.plan_batches`` into batches served mostly as views of the loaded array) or
from many small Server/MultiStream queries, optionally waiting up to
``batch_timeout_us`` for a batch to fill — gather them into a buffer allocated once per
worker, call the :class:`Predictor` and hand the outputs to the responder. Calls into a
predictor that is not thread-safe are serialised when there is more than one worker.

The success path adds no per-sample Python work beyond building LoadGen's responses:
counters are plain integers, bumped once per batch, read by a monitor thread.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mlperf_pilot.config import SutConfig
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder

NAN_ERROR = "the model answered NaN"
SKIPPED_ERROR = "not run after an earlier failure (on_error=stop)"
_MAX_FAILED_INDICES = 1000
_STOP = object()

# LoadGen's completion pair: (QuerySampleResponse, QuerySamplesComplete); tests inject
# their own to record the answers
Completion = tuple[Callable[..., Any], Callable[..., Any]]


def loadgen_completion() -> Completion:
    import mlperf_loadgen as lg

    return lg.QuerySampleResponse, lg.QuerySamplesComplete


@dataclass
class SutStats:
    """Counters the runner reads after (and a monitor reads during) a test."""

    issued: int = 0
    completed: int = 0
    failed: int = 0
    nan: int = 0  # of ``failed``: samples whose outputs held NaN
    batches: int = 0
    predict_s: float = 0.0
    first_error: str | None = None
    error_counts: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_indices: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def reasons(self) -> list[str]:
        """Why the failures make a run INVALID, in words (empty when none failed)."""
        found = []
        if self.nan:
            found.append(f"{self.nan} sample(s) answered NaN")
        others = self.failed - self.nan
        if others:
            first = next((m for m in self.error_counts if m != NAN_ERROR), self.first_error)
            found.append(f"{others} sample(s) failed: {first}")
        return found


class SutDescription(BaseModel):
    """What ran the samples, for the run record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str  # the SUT kind (``RunSpec.sut.kind``), e.g. "local"
    name: str  # what answers inside it, e.g. the backend's name
    version: str | None = None
    device_in_use: str = "unknown"
    details: dict[str, str | int | float] = Field(default_factory=dict)


class Predictor(Protocol):
    """The model call behind a batching SUT: one batch in, the card's outputs out (in the
    order ``decoder`` reads them). ``thread_safe``: whether ``predict`` may run in several
    worker threads at once (the batcher serialises calls when not). ``fixed_batch_size``:
    the batch size the model fixes, or None. A predictor may also have ``close()``, which
    :meth:`BatchingSut.close` calls."""

    thread_safe: bool
    fixed_batch_size: int | None

    def predict(self, batch: np.ndarray) -> Sequence[np.ndarray]: ...


@runtime_checkable
class Sut(Protocol):
    """LoadGen's contract (``issue``/``flush``, the FastSUT callbacks) plus what the engine
    needs around a test."""

    stats: SutStats
    max_batch_size: int

    def issue(self, ids: Sequence[int], indices: Sequence[int]) -> None: ...
    def flush(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def describe(self) -> SutDescription: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...


def error_text(exc: BaseException) -> str:
    """``Type: first line of the message`` (a MlperfPilotError's one-line ``message``)."""
    text = getattr(exc, "message", None) or str(exc).strip().splitlines()[0:1]
    if isinstance(text, list):
        text = text[0] if text else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Responder:
    """Answers LoadGen's samples and keeps the count: decoded batches, NaN rows, failures
    and (``on_error="stop"``) skipped samples. Safe to call from several threads; the
    success path takes no lock (its counters are bumped once per batch)."""

    def __init__(self, decoder: Decoder, *, on_error: str = "stop",
                 completion: Completion | None = None) -> None:
        self.decoder = decoder
        self.stats = SutStats()
        self.stop_on_error = on_error == "stop"
        # true once a sample failed under on_error="stop": answer the rest empty, unrun
        self.stopping = False
        self.response, self.complete = completion or loadgen_completion()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Zero the counters (in place: whoever holds ``stats`` sees the new test)."""
        self.stats.reset()
        self.stopping = False

    # ------------------------------------------------------------------------- answers

    def respond(self, ids: Sequence[int], idx: np.ndarray, outputs: Sequence[np.ndarray]
                ) -> None:
        """Decode one batch's outputs (``ids[i]`` is QSL sample ``idx[i]``) and complete
        it with one call; rows whose outputs hold NaN are answered empty and counted."""
        decoder = self.decoder
        try:
            nan = decoder.nan_samples(outputs, len(idx))
            if nan is None:
                responses = decoder.decode(outputs, idx)
            else:
                with np.errstate(invalid="ignore"):
                    responses = decoder.decode(outputs, idx)
        except Exception as exc:
            self.fail(ids, idx, exc)
            return
        sizes = responses.sizes
        if nan is not None:  # a NaN answer is a failure: empty response, counted
            sizes = list(sizes)
            for position in nan:
                sizes[position] = 0
            self.count_failed(idx[nan], NAN_ERROR, nan=True)
        base = responses.buffer.ctypes.data
        make = self.response
        triples = zip(ids, responses.offsets, sizes, strict=True)
        self.complete([make(i, base + o, s) for i, o, s in triples])
        # ``responses`` stays referenced until here, after QuerySamplesComplete returned
        stats = self.stats
        stats.completed += len(ids) - (0 if nan is None else len(nan))
        stats.batches += 1

    def fail(self, ids: Sequence[int], idx: Sequence[int] | np.ndarray, exc: BaseException
             ) -> None:
        """These samples failed with ``exc``: counted, answered empty."""
        self.count_failed(idx, error_text(exc))
        self.complete_empty(ids)

    def skip(self, ids: Sequence[int], idx: Sequence[int] | np.ndarray) -> None:
        """Not run because an earlier sample failed (``on_error="stop"``): counted as
        failed, answered empty."""
        with self._lock:
            self.stats.failed += len(idx)
            self.stats.error_counts[SKIPPED_ERROR] += len(idx)
        self.complete_empty(ids)

    def complete_empty(self, ids: Sequence[int]) -> None:
        make = self.response
        self.complete([make(i, 0, 0) for i in ids])

    def count_failed(self, idx: Sequence[int] | np.ndarray, message: str, *,
                     nan: bool = False) -> None:
        """Count failed samples under ``message``; keep the first error and some indices
        (the caller answers them)."""
        with self._lock:
            if self.stop_on_error:
                self.stopping = True
            stats = self.stats
            stats.failed += len(idx)
            if nan:
                stats.nan += len(idx)
            stats.error_counts[message] += len(idx)
            if stats.first_error is None:
                stats.first_error = message
            room = _MAX_FAILED_INDICES - len(stats.failed_indices)
            if room > 0:
                stats.failed_indices.extend(int(i) for i in idx[:room])


class BatchingSut:
    """A :class:`Sut` that batches LoadGen's samples for a :class:`Predictor` (see the
    module's docstring). Subclasses give ``describe()`` and may replace the step that
    runs one batch (``run_batch``), e.g. to send it over a network and answer later."""

    kind = "batching"
    # whether run_batch gathers the samples into arrays (a worker then holds one gather
    # buffer); a SUT that sends only the samples' names (serverless) sets False
    gathers = True

    def __init__(
        self,
        predictor: Predictor,
        store: SampleStore,
        decoder: Decoder,
        config: SutConfig,
        *,
        completion: Completion | None = None,
    ) -> None:
        self.predictor = predictor
        self.store = store
        self.decoder = decoder
        self.config = config
        fixed = predictor.fixed_batch_size
        self.max_batch_size = (min(config.max_batch_size, fixed) if fixed
                               else config.max_batch_size)
        self._timeout_s = config.batch_timeout_us / 1e6
        self.responder = Responder(decoder, on_error=config.on_error, completion=completion)
        self.stats = self.responder.stats  # reset in place by start()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.workers = config.workers or 1  # 0 (by scenario) is resolved by the runner
        self._predict: Callable[[np.ndarray], Sequence[np.ndarray]] = predictor.predict
        if self.workers > 1 and not getattr(predictor, "thread_safe", True):
            predict_lock = threading.Lock()
            call = predictor.predict

            def serialised(batch: np.ndarray) -> Sequence[np.ndarray]:
                with predict_lock:  # this predictor runs one call at a time
                    return call(batch)

            self._predict = serialised
        self._threads: list[threading.Thread] = []

    def describe(self) -> SutDescription:
        return SutDescription(kind=self.kind, name=type(self.predictor).__name__,
                              details=self.batcher_details())

    def batcher_details(self) -> dict[str, str | int | float]:
        """How this SUT batched, for ``SutDescription.details``."""
        return {"max_batch_size": self.max_batch_size, "workers": self.workers,
                "batch_timeout_us": self.config.batch_timeout_us,
                "on_error": self.config.on_error}

    # ------------------------------------------------------------------ LoadGen callbacks

    def issue(self, ids: Sequence[int], indices: Sequence[int]) -> None:
        """LoadGen's (fast) issue callback: queue and return."""
        idx = np.asarray(indices, dtype=np.int64)
        self.stats.issued += len(idx)
        self._queue.put((ids, idx))

    def flush(self) -> None:
        """LoadGen's flush callback: nothing is held back, so nothing to do."""

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._threads:
            return
        self.responder.reset()
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"sut-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def close(self) -> None:
        """Stop, then release the predictor (its ``close()``, when it has one)."""
        self.stop()
        close = getattr(self.predictor, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> BatchingSut:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------------- workers

    def _take(self) -> tuple[Sequence[int], np.ndarray] | None:
        """The next batch: up to ``max_batch_size`` samples from one or more queued
        queries (waiting up to the batch timeout for more); None when stopping."""
        item = self._queue.get()
        if item is _STOP:
            return None
        ids, idx = item
        limit = self.max_batch_size
        if len(idx) > limit:
            return self._split(ids, idx)
        if len(idx) == limit:
            return ids, idx
        id_parts, idx_parts, have = [ids], [idx], len(idx)
        deadline = time.monotonic() + self._timeout_s if self._timeout_s > 0 else 0.0
        while have < limit:
            try:
                if deadline:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    item = self._queue.get(timeout=remaining)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # keep it for the loop above
                break
            more_ids, more_idx = item
            room = limit - have
            if len(more_idx) > room:
                self._queue.put((more_ids[room:], more_idx[room:]))
                more_ids, more_idx = more_ids[:room], more_idx[:room]
            id_parts.append(more_ids)
            idx_parts.append(more_idx)
            have += len(more_idx)
        if len(id_parts) == 1:
            return ids, idx
        return list(itertools.chain.from_iterable(id_parts)), np.concatenate(idx_parts)

    def _split(self, ids: Sequence[int], idx: np.ndarray) -> tuple[Sequence[int], np.ndarray]:
        """A large (Offline) query: planned into batches served mostly without copies;
        the first is returned, the rest queued for any worker."""
        id_array = np.asarray(ids, dtype=np.uint64)
        batches = self.store.plan_batches(idx, self.max_batch_size)
        for positions in batches[1:]:
            self._queue.put((id_array[positions].tolist(), idx[positions]))
        first = batches[0]
        return id_array[first].tolist(), idx[first]

    def _work(self) -> None:
        shape = (self.max_batch_size, *self.store.dataset.sample_shape)
        buffer = np.empty(shape, dtype=self.store.dataset.dtype) if self.gathers else \
            np.empty((0,), dtype=self.store.dataset.dtype)
        run_batch = self.run_batch
        while True:
            work = self._take()
            if work is None:
                return
            ids, idx = work
            try:
                run_batch(ids, idx, buffer)
            except BaseException as exc:  # the worker must survive to answer LoadGen
                self.responder.fail(ids, idx, exc)

    def run_batch(self, ids: Sequence[int], idx: np.ndarray, buffer: np.ndarray) -> None:
        """Run one batch and answer it: gather (a view, or into ``buffer``), predict,
        respond; any failure is counted and answered empty."""
        responder = self.responder
        if responder.stopping:
            responder.skip(ids, idx)
            return
        try:
            batch = self.store.gather(idx, buffer)
            started = time.perf_counter()
            outputs = self._predict(batch)
            self.stats.predict_s += time.perf_counter() - started
        except Exception as exc:
            responder.fail(ids, idx, exc)
            return
        responder.respond(ids, idx, outputs)


__all__ = ["NAN_ERROR", "SKIPPED_ERROR", "BatchingSut", "Completion", "Predictor",
           "Responder", "Sut", "SutDescription", "SutStats", "error_text",
           "loadgen_completion"]

"""The local SUT: batches LoadGen's samples and runs them on an in-process backend.

LoadGen's issue callback only queues the work and returns (it never blocks LoadGen's
thread). Worker threads take up to ``max_batch_size`` queued samples at a time — from
one large Offline query or from many small Server/MultiStream queries, optionally
waiting up to ``batch_timeout_us`` for a batch to fill — gather them from the
SampleStore into a reused buffer, run the backend, decode the outputs into one
response buffer per batch, and complete the batch with one QuerySamplesComplete call
whose responses point into that buffer (kept alive until the call returns).

A failed batch is never answered with made-up results: its samples are counted as
failed, the error is recorded, and they are completed with empty (size 0) responses
only because LoadGen has no other way to end a sample. A sample whose outputs hold NaN
is a failure too ("answered NaN"), answered the same way. With ``on_error="stop"`` every
later sample is completed the same way without running it, so an INVALID run ends
quickly. The runner marks any run with failures INVALID, with the first error as the
reason.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlperf_pilot.backends.base import Backend
from mlperf_pilot.config import SutConfig
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.decoders.base import Decoder

_MAX_FAILED_INDICES = 1000
NAN_ERROR = "the model answered NaN"
_STOP = object()


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


def _loadgen_completion() -> tuple[Callable[..., Any], Callable[..., Any]]:
    import mlperf_loadgen as lg

    return lg.QuerySampleResponse, lg.QuerySamplesComplete


class LocalSut:
    """Batching SUT for LoadGen's ConstructFastSUT (``issue(ids, indices)``)."""

    def __init__(
        self,
        backend: Backend,
        store: SampleStore,
        decoder: Decoder,
        settings: SutConfig,
        *,
        completion: tuple[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.decoder = decoder
        self.settings = settings
        fixed = backend.fixed_batch_size
        self.max_batch_size = (min(settings.max_batch_size, fixed) if fixed
                               else settings.max_batch_size)
        self._timeout_s = settings.batch_timeout_us / 1e6
        self._response, self._complete = completion or _loadgen_completion()
        self.stats = SutStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._predict = backend.predict
        self.workers = settings.workers or 1  # 0 (by scenario) is resolved by the runner
        if self.workers > 1 and not getattr(backend, "thread_safe", True):
            predict_lock = threading.Lock()

            def serialised(batch: np.ndarray) -> list[np.ndarray]:
                with predict_lock:  # this backend runs one call at a time
                    return backend.predict(batch)

            self._predict = serialised
        self._failed = False
        self._threads: list[threading.Thread] = []

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
        self._failed = False
        self.stats = SutStats()
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

    def __enter__(self) -> LocalSut:
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
        buffer = np.empty(shape, dtype=self.store.dataset.dtype)
        while True:
            work = self._take()
            if work is None:
                return
            ids, idx = work
            try:
                self._run_batch(ids, idx, buffer)
            except BaseException as exc:  # the worker must survive to answer LoadGen
                self._record_failure(idx, exc)
                self._complete_empty(ids)

    def _run_batch(self, ids: Sequence[int], idx: np.ndarray, buffer: np.ndarray) -> None:
        if self._failed and self.settings.on_error == "stop":
            self._record_skipped(idx)
            self._complete_empty(ids)
            return
        try:
            batch = self.store.gather(idx, buffer)
            started = time.perf_counter()
            outputs = self._predict(batch)
            self.stats.predict_s += time.perf_counter() - started
            nan = self.decoder.nan_samples(outputs, len(idx))
            if nan is None:
                responses = self.decoder.decode(outputs, idx)
            else:
                with np.errstate(invalid="ignore"):
                    responses = self.decoder.decode(outputs, idx)
        except Exception as exc:
            self._record_failure(idx, exc)
            self._complete_empty(ids)
            return
        sizes = responses.sizes
        if nan is not None:  # a NaN answer is a failure: empty response, counted
            sizes = list(sizes)
            for position in nan:
                sizes[position] = 0
            self._record_nan(idx[nan])
        base = responses.buffer.ctypes.data
        make = self._response
        triples = zip(ids, responses.offsets, sizes, strict=True)
        self._complete([make(i, base + o, s) for i, o, s in triples])
        # ``responses`` stays referenced until here, after QuerySamplesComplete returned
        self.stats.completed += len(ids) - (0 if nan is None else len(nan))
        self.stats.batches += 1

    # ---------------------------------------------------------------------------- errors

    def _complete_empty(self, ids: Sequence[int]) -> None:
        make = self._response
        self._complete([make(i, 0, 0) for i in ids])

    def _record_failure(self, idx: np.ndarray, exc: BaseException) -> None:
        text = getattr(exc, "message", None) or str(exc).strip().splitlines()[0:1]
        if isinstance(text, list):
            text = text[0] if text else ""
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        self._count_failed(idx, message)

    def _record_nan(self, idx: np.ndarray) -> None:
        self._count_failed(idx, NAN_ERROR, nan=True)

    def _count_failed(self, idx: np.ndarray, message: str, *, nan: bool = False) -> None:
        """Count failed samples under ``message``; keep the first error and some indices."""
        with self._lock:
            self._failed = True
            self.stats.failed += len(idx)
            if nan:
                self.stats.nan += len(idx)
            self.stats.error_counts[message] += len(idx)
            if self.stats.first_error is None:
                self.stats.first_error = message
            room = _MAX_FAILED_INDICES - len(self.stats.failed_indices)
            if room > 0:
                self.stats.failed_indices.extend(int(i) for i in idx[:room])

    def _record_skipped(self, idx: np.ndarray) -> None:
        with self._lock:
            self.stats.failed += len(idx)
            self.stats.error_counts["not run after an earlier failure (on_error=stop)"] += len(idx)

"""The server's dynamic batcher: concurrent requests combined into backend calls.

A request (one input array ``[N, ...]``) is queued from the event loop with
:meth:`Batcher.submit`; worker threads take queued requests in arrival order and run
up to ``max_batch_size`` samples in one backend call, waiting at most
``batch_timeout_us`` after the first one arrived for more to come (0: run whatever is
queued at once). Inference never runs on the event loop. Each request gets its own rows
of the outputs back, and ``finish`` (the response encoding) runs in the worker thread
on those rows while they are still valid (a backend may reuse its output buffers), so
the event loop only sends bytes.

A request larger than ``max_batch_size`` is split into chunks of at most that size
(a model file may fix its batch size); the chunks run like any other request, and the
request is answered once every chunk is back, the outputs joined in order.

A backend exception fails exactly the requests of that batch, with the error's first
line (:class:`InferenceFailed`); nothing is ever answered with made-up outputs. Calls
into a backend that is not thread-safe are serialised with a lock.

The per-request path is lean: a request that runs alone is passed to the backend as
the array it came in (a view of the request body for binary tensors); arrays are joined
(one ``np.concatenate``) only when requests are combined.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from mlperf_pilot.backends.base import first_line


class InferenceFailed(Exception):
    """The backend failed on the batch this request was in (one line, the cause)."""


class BatchObserver(Protocol):
    """What the batcher reports (the server's metrics)."""

    def batch(self, samples: int, requests: int, seconds: float, ok: bool) -> None: ...

    def queued(self, seconds: float) -> None: ...


class _NoObserver:
    def batch(self, samples: int, requests: int, seconds: float, ok: bool) -> None:
        return None

    def queued(self, seconds: float) -> None:
        return None


Finish = Callable[[list[np.ndarray]], Any]


class _Job:
    """One request: its future, how many chunks are still out, their outputs."""

    __slots__ = ("failed", "finish", "future", "lock", "loop", "parts", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, finish: Finish, chunks: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.finish = finish
        self.pending = chunks
        self.parts: list[list[np.ndarray] | None] | None = [None] * chunks if chunks > 1 else None
        self.lock = threading.Lock() if chunks > 1 else None
        self.failed = False


class _Chunk:
    __slots__ = ("array", "enqueued", "index", "job", "size")

    def __init__(self, array: np.ndarray, job: _Job, index: int) -> None:
        self.array = array
        self.size = int(array.shape[0])
        self.job = job
        self.index = index
        self.enqueued = time.perf_counter()


_STOP = object()


def _settle(results: Sequence[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: hand each request its result (a request whose client went
    away has a cancelled future)."""
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class Batcher:
    """Worker threads forming batches across requests and running ``predict``."""

    def __init__(self, predict: Callable[[np.ndarray], list[np.ndarray]], *,
                 max_batch_size: int, batch_timeout_us: int = 0, workers: int = 1,
                 thread_safe: bool = True, observer: BatchObserver | None = None) -> None:
        self._predict = predict
        self.max_batch_size = max(1, max_batch_size)
        self._timeout_s = batch_timeout_us / 1e6
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = None if thread_safe else threading.Lock()
        self._observer: BatchObserver = observer or _NoObserver()
        self._threads = [threading.Thread(target=self._work, name=f"oip-batcher-{n}",
                                          daemon=True) for n in range(max(1, workers))]
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ event-loop side

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    @property
    def running(self) -> bool:
        return self._started and not self._closed and all(t.is_alive() for t in self._threads)

    def submit(self, array: np.ndarray, finish: Finish) -> asyncio.Future[Any]:
        """Queue one request (called on the event loop); the future gets what ``finish``
        returns for the request's outputs, or :class:`InferenceFailed`."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        loop = asyncio.get_running_loop()
        rows = int(array.shape[0])
        limit = self.max_batch_size
        if rows <= limit:
            job = _Job(loop, finish, 1)
            self._queue.put(_Chunk(array, job, 0))
            return job.future
        starts = range(0, rows, limit)
        job = _Job(loop, finish, len(starts))
        for index, start in enumerate(starts):
            self._queue.put(_Chunk(array[start:start + limit], job, index))
        return job.future

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the workers once the queue is empty (what is queued still runs)."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        for _ in self._threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # ---------------------------------------------------------------------- worker side

    def _work(self) -> None:
        carry: _Chunk | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            batch, carry, stop = self._gather(first)
            self._run_guarded(batch)
            if stop:
                if carry is not None:
                    self._run_guarded([carry])
                return

    def _run_guarded(self, batch: list[_Chunk]) -> None:
        """``_run``, and should anything in it fail unexpectedly, the batch's requests
        failed with the error instead of left waiting (the worker goes on)."""
        try:
            self._run(batch)
        except Exception as exc:
            error = InferenceFailed(f"the server failed on the batch: {first_line(exc)}")
            results = [r for r in (self._fail(chunk.job, error) for chunk in batch) if r]
            loops = {chunk.job.loop for chunk in batch}
            for loop in loops:
                mine = [r for r in results if r[0].get_loop() is loop]
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, mine)

    def _gather(self, first: _Chunk) -> tuple[list[_Chunk], _Chunk | None, bool]:
        """``first`` and what else fits: (batch, a chunk that did not fit, stop seen)."""
        batch = [first]
        size = first.size
        limit = self.max_batch_size
        get_nowait = self._queue.get_nowait
        deadline = first.enqueued + self._timeout_s
        while size < limit:
            try:
                item = get_nowait()
            except queue.Empty:
                if self._timeout_s <= 0:
                    break
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, None, True
            if size + item.size > limit:
                return batch, item, False
            batch.append(item)
            size += item.size
        return batch, None, False

    def _run(self, batch: list[_Chunk]) -> None:
        started = time.perf_counter()
        observer = self._observer
        for chunk in batch:
            observer.queued(started - chunk.enqueued)
        samples = sum(chunk.size for chunk in batch)
        error: BaseException | None = None
        outputs: list[np.ndarray] = []
        try:
            inputs = batch[0].array if len(batch) == 1 else np.concatenate(
                [chunk.array for chunk in batch])
            if self._lock is None:
                outputs = self._predict(inputs)
            else:
                with self._lock:
                    outputs = self._predict(inputs)
            for number, output in enumerate(outputs):
                rows = output.shape[0] if output.ndim else 0
                if rows != samples:
                    raise InferenceFailed(f"the backend's output {number} has {rows} rows "
                                          f"for a batch of {samples}")
        except Exception as exc:  # every failure of the batch fails its requests
            error = exc if isinstance(exc, InferenceFailed) else InferenceFailed(
                f"inference failed: {first_line(exc)}")
        observer.batch(samples, len(batch), time.perf_counter() - started, error is None)
        settled: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        offset = 0
        for chunk in batch:
            rows = chunk.size
            if error is None:
                result = self._deliver(chunk, [out[offset:offset + rows] for out in outputs])
            else:
                result = self._fail(chunk.job, error)
            offset += rows
            if result is not None:
                settled.setdefault(chunk.job.loop, []).append(result)
        for loop, results in settled.items():
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, results)

    @staticmethod
    def _fail(job: _Job, error: BaseException) -> tuple[Any, Any, BaseException] | None:
        if job.lock is None:
            return job.future, None, error
        with job.lock:
            if job.failed:
                return None
            job.failed = True
        return job.future, None, error

    @staticmethod
    def _deliver(chunk: _Chunk, parts: list[np.ndarray]) -> tuple[Any, Any, Any] | None:
        job = chunk.job
        if job.lock is not None:  # a split request: keep a copy until every chunk is back
            with job.lock:
                if job.failed:
                    return None
                assert job.parts is not None
                job.parts[chunk.index] = [np.array(part) for part in parts]
                job.pending -= 1
                if job.pending:
                    return None
            pieces = job.parts
            parts = [np.concatenate([piece[n] for piece in pieces if piece is not None])
                     for n in range(len(parts))]
        try:
            return job.future, job.finish(parts), None
        except Exception as exc:
            return job.future, None, InferenceFailed(
                f"the outputs could not be encoded: {first_line(exc)}")


__all__ = ["BatchObserver", "Batcher", "InferenceFailed"]

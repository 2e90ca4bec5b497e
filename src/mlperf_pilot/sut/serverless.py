"""The serverless SUT: the batcher (``sut.base.BatchingSut``) over functions reached
through object storage.

Queued samples are batched on this side exactly as the local SUT batches them;
``concurrency`` worker threads each turn one batch into one request object
(``input/<run>/<request>.json``, :class:`~mlperf_pilot.serverless.messages.Request`,
naming the preprocessed samples already in the bucket, and carrying them when the batch
is at most ``inline_samples_mb``: the function then reads no ``datasets/`` object) and
wait for its answer. The answer is learned from an event, never by polling the bucket:
a receiver thread long-polls the SQS queue subscribed to ``output/`` creations, wakes
the worker whose output arrived and only then has the messages deleted (the queue's
deleter thread, batched); the worker reads the output object and hands its tensors to the card's
decoder, as a local backend's outputs would be, so accuracy mode gives the same
accuracy.txt. An ``ok: false`` output fails its samples with the function's error type
and message; no output within ``request_timeout_ms`` fails them with
``SutTimeoutError`` (counted, the run INVALID with the reason, never a made-up answer;
``on_error=stop`` answers the rest empty without sending them).

Each LoadGen test has its own run id (``bucket.new_run_id``: ``local-...`` for the local
pool, ``m<MB>-...`` for the AWS function of that memory size), and :meth:`close` deletes
the run's ``input/``, ``output/`` and ``completed/`` objects, so the next run finds none
of them. :meth:`ServerlessSut.describe` adds the function side's timings of the answers
(cold starts, ``load_model``, ``image_operations``, ``forward``, the handler's duration)
to the record.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlperf_pilot.errors import SutError, SutTimeoutError
from mlperf_pilot.sut.base import BatchingSut, Completion, SutDescription

if TYPE_CHECKING:
    from mlperf_pilot.config.sut import ServerlessSutConfig
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.serverless.bucket import Bucket, EventQueue
    from mlperf_pilot.serverless.local_functions import LocalFunctionPool
    from mlperf_pilot.serverless.messages import Output

RECEIVE_WAIT_S = 1  # the receiver's long poll; close() waits at most this long for it
# the warm-up's requests carry the instances' cold starts (imports, model download and
# load): they may take this long, or the request timeout when that is longer
WARMUP_TIMEOUT_MS = 60_000


@dataclass
class FunctionTimings:
    """The function side of the answers one SUT got (the seed's ``inf_perf``)."""

    answers: int = 0
    failed: int = 0
    cold: list[float] = field(default_factory=list)  # load_model of the cold answers
    cold_image_operations: list[float] = field(default_factory=list)
    cold_forward: list[float] = field(default_factory=list)
    image_operations: list[float] = field(default_factory=list)  # warm answers
    forward: list[float] = field(default_factory=list)
    duration: list[float] = field(default_factory=list)  # handler start -> finish, ms
    # each instance's model load (every answer of an instance repeats it)
    load_model: dict[str, float] = field(default_factory=dict)

    def add(self, output: Output) -> None:
        self.answers += 1
        if not output.ok:
            self.failed += 1
        if output.instance and output.inf_perf.load_model:
            self.load_model[output.instance] = output.inf_perf.load_model
        if output.finish_time and output.start_time:
            self.duration.append((output.finish_time - output.start_time) * 1000.0)
        perf = output.inf_perf
        if output.cold:
            self.cold.append(perf.load_model)
            if output.ok:
                self.cold_image_operations.append(perf.image_operations)
                self.cold_forward.append(perf.forward)
        elif output.ok:
            self.image_operations.append(perf.image_operations)
            self.forward.append(perf.forward)

    def summary(self) -> dict[str, str | int | float]:
        def mean(values: list[float]) -> float:
            return round(statistics.fmean(values), 3) if values else 0.0

        return {"fn_answers": self.answers, "fn_failed": self.failed,
                "fn_cold_starts": len(self.cold), "fn_instances": len(self.load_model),
                "fn_load_model_ms": mean(list(self.load_model.values())),
                "fn_cold_image_operations_ms": mean(self.cold_image_operations),
                "fn_cold_forward_ms": mean(self.cold_forward),
                "fn_image_operations_ms": mean(self.image_operations),
                "fn_forward_ms": mean(self.forward),
                "fn_duration_ms": mean(self.duration)}


class FunctionClient:
    """Requests for one run: write the request object, wait for its output's event, read
    the output. Thread-safe: every worker thread calls :meth:`call` at once."""

    def __init__(self, bucket: Bucket, events: EventQueue, run_id: str, *, dataset_key: str,
                 outputs: Sequence[str], timeout_ms: int, what: str,
                 inline_bytes: int = 0) -> None:
        self.bucket = bucket
        self.inline_bytes = inline_bytes  # a batch up to this size travels in its request
        self.inlined = 0  # requests that carried their samples
        self.events = events
        self.run_id = run_id
        self.dataset_key = dataset_key
        self.outputs = list(outputs)
        self.timeout_ms = timeout_ms
        self.what = what  # "local functions" / "the AWS function", for messages
        self.timings = FunctionTimings()
        self.warmup_timings = FunctionTimings()
        self.late = 0  # outputs that came after their request timed out
        self.receive_error: str | None = None
        self._numbers = itertools.count()
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._receive, daemon=True,
                                            name="serverless-receiver")
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=RECEIVE_WAIT_S + 30)
            self._thread = None
        self.events.close()  # the deferred deletes of the last messages

    def end_warmup(self) -> None:
        """The answers so far were the warm-up's: the test's timings start now."""
        with self._lock:
            self.warmup_timings, self.timings = self.timings, FunctionTimings()
            self.inlined = 0

    def fits(self, nbytes: int) -> bool:
        """Whether a batch of ``nbytes`` travels inside its request."""
        return 0 < nbytes <= self.inline_bytes

    def call(self, indices: Sequence[int] | np.ndarray, *, samples: np.ndarray | None = None,
             timeout_ms: int | None = None) -> Output:
        """One request for these samples (``samples``: their stacked arrays, sent inside
        the request when they fit, else the function reads them from ``datasets/``); its
        output (``ok`` may be false). SutTimeoutError when no output arrives within
        ``timeout_ms`` (default the request timeout); SutError when it cannot be read."""
        from mlperf_pilot.serverless import messages

        timeout_ms = timeout_ms or self.timeout_ms
        prefix = self.bucket.prefix
        request_id = f"r{next(self._numbers):07d}"
        request = messages.Request(
            run_id=self.run_id, request_id=request_id,
            sample_keys=[messages.sample_key(self.dataset_key, int(i), prefix)
                         for i in indices],
            output_key=messages.output_key(self.run_id, request_id, prefix),
            completed_key=messages.completed_key(self.run_id, request_id, prefix),
            outputs=self.outputs, issued_at=time.time())
        if samples is not None and not self.fits(samples.nbytes):
            samples = None
        body = request.to_bytes(samples)
        arrived = threading.Event()
        with self._lock:
            self._waiting[request_id] = arrived
            self.inlined += samples is not None
        try:
            self.bucket.put(messages.input_key(self.run_id, request_id, prefix), body)
            if not arrived.wait(timeout_ms / 1000.0):
                why = f"; the event queue failed: {self.receive_error}" \
                    if self.receive_error else ""
                raise SutTimeoutError(
                    f"request {request_id} ({len(request.sample_keys)} sample(s)) to "
                    f"{self.what}: no output within {timeout_ms} ms{why}",
                    hint="raise --request-timeout-ms, or check that the function is "
                    "triggered by input/ and can write output/")
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
        data = self.bucket.get(request.output_key)
        if data is None:
            raise SutError(f"the output of request {request_id} was announced but "
                           f"{request.output_key} is not there")
        try:
            output = messages.Output.from_json(data)
        except messages.MessageError as exc:
            raise SutError(f"the output of request {request_id} cannot be read: {exc}",
                           hint="the function and this tool speak different message "
                           "versions: package and deploy the function again") from None
        with self._lock:
            self.timings.add(output)
        return output

    def _receive(self) -> None:
        from mlperf_pilot.serverless.messages import OUTPUT

        head = f"{self.bucket.prefix}{OUTPUT}{self.run_id}/"
        while not self._stopping.is_set():
            try:
                events = self.events.receive(wait_s=RECEIVE_WAIT_S, defer_delete=True)
            except Exception as exc:  # the endpoint went away: requests time out
                self.receive_error = getattr(exc, "message", None) or str(exc)
                time.sleep(0.2)
                continue
            for event in events:
                key = event.key
                if not key.startswith(head) or not key.endswith(".json"):
                    continue  # another run's (one run at a time per bucket)
                request_id = key[len(head):-len(".json")]
                with self._lock:
                    waiter = self._waiting.get(request_id)
                if waiter is None:
                    self.late += 1
                else:
                    waiter.set()


class _Remote:
    """The batcher's predictor slot: the model runs in the functions (run_batch sends
    sample keys, not arrays)."""

    thread_safe = True
    fixed_batch_size = None

    def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        raise SutError("the serverless SUT sends requests, it does not predict here")


class ServerlessSut(BatchingSut):
    """Batching SUT whose batches are answered by functions (see the module doc)."""

    kind = "serverless"
    gathers = False  # requests name the samples already in the bucket: no gather buffer

    def __init__(self, store: SampleStore, decoder: Decoder, config: ServerlessSutConfig,
                 client: FunctionClient, *, pool: LocalFunctionPool | None = None,
                 version: str | None = None, completion: Completion | None = None) -> None:
        super().__init__(_Remote(), store, decoder, config, completion=completion)
        self.sls = config
        self.client = client
        self.pool = pool
        self.version = version
        self.cleaned: int | None = None
        self._closed = False

    def call_arrays(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """One request's decoded-ready outputs (the warm-up's path: cold starts allowed
        ``WARMUP_TIMEOUT_MS``); a failed answer raises SutError with the function's
        error."""
        output = self.client.call(indices, samples=self._read(indices),
                                  timeout_ms=max(WARMUP_TIMEOUT_MS, self.client.timeout_ms))
        if not output.ok:
            raise SutError(f"the function failed: {output.error_type}: "
                           f"{output.error_message}")
        return self._arrays(output, len(indices))

    def run_batch(self, ids: Sequence[int], idx: np.ndarray, buffer: np.ndarray) -> None:
        responder = self.responder
        if responder.stopping:
            responder.skip(ids, idx)
            return
        started = time.perf_counter()
        try:
            samples = self.store.gather(idx) if self.client.fits(
                len(idx) * self._sample_nbytes) else None
            output = self.client.call(idx, samples=samples)
            if output.ok:
                arrays = self._arrays(output, len(idx))
        except Exception as exc:
            responder.fail(ids, idx, exc)
            return
        finally:
            self.stats.predict_s += time.perf_counter() - started
        if not output.ok:
            where = f" (instance {output.instance})" if output.instance else ""
            responder.count_failed(idx, f"{output.error_type}: {output.error_message}{where}")
            responder.complete_empty(ids)
            return
        responder.respond(ids, idx, arrays)

    @property
    def _sample_nbytes(self) -> int:
        dataset = self.store.dataset
        return int(np.prod(dataset.sample_shape)) * np.dtype(dataset.dtype).itemsize

    def _read(self, indices: Sequence[int]) -> np.ndarray | None:
        """The warm-up's samples, read from the data set (LoadGen has loaded none yet);
        None where they would not travel inline (or there is no data set to read)."""
        read = getattr(self.store.dataset, "read", None)
        if read is None or not self.client.fits(len(indices) * self._sample_nbytes):
            return None
        return np.stack([read(int(i)) for i in indices])

    def _arrays(self, output: Output, rows: int) -> list[np.ndarray]:
        from mlperf_pilot.serverless.messages import MessageError

        try:
            arrays = output.arrays()
        except MessageError as exc:
            raise SutError(f"request {output.request_id}: {exc}") from None
        names = self.client.outputs
        if len(arrays) != len(names):
            raise SutError(f"request {output.request_id}: the function answered "
                           f"{len(arrays)} tensor(s), the card's postprocess reads "
                           f"{len(names)} ({', '.join(names)})")
        for name, array in zip(names, arrays, strict=True):
            if array.ndim == 0 or array.shape[0] != rows:
                got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} row(s)"
                raise SutError(f"request {output.request_id}: output {name!r} has {got} "
                               f"for a batch of {rows}")
        return arrays

    def describe(self) -> SutDescription:
        config = self.sls
        details: dict[str, str | int | float] = dict(self.batcher_details())
        details.update({
            "bucket": str(config.bucket), "storage_endpoint": config.storage_endpoint or "aws",
            "region": self.client.bucket.aws.region, "functions": config.functions,
            "memory_mb": config.memory_mb, "concurrency": self.workers,
            "request_timeout_ms": config.request_timeout_ms, "prefix": config.prefix,
            "run_id": self.client.run_id, "function_threads": config.function_threads(),
            "model_format": str(config.model_format)})
        if config.functions == "aws":
            details["function_name"] = config.function_name or ""
        details["inline_samples_mb"] = config.inline_samples_mb
        details["requests_inline"] = self.client.inlined
        details.update(self.client.timings.summary())
        details["fn_warmup_cold_starts"] = len(self.client.warmup_timings.cold)
        # the cold answers are the warm-up's (open() sends one per instance): their means,
        # for the sweep's cold/warm breakdown
        warmup = self.client.warmup_timings.summary()
        for key in ("fn_cold_image_operations_ms", "fn_cold_forward_ms"):
            details[key.replace("fn_", "fn_warmup_", 1)] = warmup[key]
        if self.client.late:
            details["fn_late_outputs"] = self.client.late
        if self.pool is not None:
            details.update(self.pool.describe())
            details["local_confinement"] = self.pool.confinement.words()
        if self.cleaned is not None:
            details["objects_cleaned"] = self.cleaned
        where = ("local functions" if config.functions == "local" else "AWS Lambda")
        return SutDescription(kind=self.kind, name=str(config.backend), version=self.version,
                              device_in_use=f"{where} ({config.memory_mb} MB)",
                              details=details)

    def close(self) -> None:
        """Stop the workers, the receiver and the pool; delete the run's objects."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        try:
            self.client.stop()
            if self.pool is not None:
                self.pool.stop()
        finally:
            self.cleaned = self.client.bucket.clean_run(self.client.run_id)


__all__ = ["WARMUP_TIMEOUT_MS", "FunctionClient", "FunctionTimings", "ServerlessSut"]

"""The function: AWS Lambda's ``handler(event, context)``, also run by the local function
pool. It answers the request objects an S3 ``ObjectCreated`` event names.

**Cold start** (module import, once per instance): the settings come from environment
variables set at deploy time; the model file(s) are found in the model layer or
downloaded from the bucket to ``$MLPERF_FN_TMP``, and the engine is loaded; the time it
takes is ``inf_perf.load_model`` (the engine's import, the download, the load; not boto3's
import; repeated in every answer of the instance). A load that fails is not raised:
every request then gets an output object with ``ok: false`` and the load error, so the
host learns of it.

Environment (``MLPERF_FN_*``; ``mlperf-pilot serverless package`` lists the values in
manifest.json under ``environment``; none of them is a secret)

=========================  ===============================================================
``MLPERF_FN_BACKEND``      ``onnxruntime`` | ``openvino`` | ``opencv`` | ``null`` (required)
``MLPERF_FN_MODEL_FILE``   the main model file's name (``m.onnx``, ``m.xml``, ``m.prototxt``)
``MLPERF_FN_MODEL_KEY``    its key in the bucket (``models/<sha256>/<file>``); every object
                           under that folder is downloaded (an IR's .bin, a .caffemodel).
                           Unset: the model is read from ``MLPERF_FN_MODEL_DIR``
``MLPERF_FN_MODEL_DIR``    the folder holding the model files (default
                           ``/opt/python/mlperf_pilot_model``: the model layer)
``MLPERF_FN_BUCKET``       the bucket of ``MLPERF_FN_MODEL_KEY`` (requests name their own)
``MLPERF_FN_S3_ENDPOINT``  an S3 endpoint URL (a local moto server); unset: AWS's
``MLPERF_FN_THREADS``      engine threads (default: the usable cores)
``MLPERF_FN_INPUT_LAYOUT`` ``NCHW`` (default) or ``NHWC`` (OpenCV transposes NHWC input)
``MLPERF_FN_OUTPUTS``      comma-separated output names, for requests that name none
``MLPERF_FN_OPTIONS``      a JSON object of engine options (OpenVINO ``performance_hint``,
                           ``inference_precision``)
``MLPERF_FN_TMP``          scratch folder for downloads (default ``/tmp``)
``MLPERF_FN_MEMORY_MB``    the memory size to report when the context has none
``MLPERF_FN_INSTANCE``     the instance name to report when the context has none
=========================  ===============================================================

Credentials and the region come from boto3's usual chain (the Lambda role; locally the
``AWS_*`` variables of the process). **Context**: any object; the handler reads, when
present, ``log_stream_name`` (the instance name, else ``$MLPERF_FN_INSTANCE``, else
``pid-<pid>``) and ``memory_limit_in_mb`` (else ``$MLPERF_FN_MEMORY_MB``, else
``$AWS_LAMBDA_FUNCTION_MEMORY_SIZE``). ``None`` is accepted.

**Event**: S3 event records (``Records[*].s3.bucket.name``, ``.object.key``, URL-encoded:
decoded with ``unquote_plus``); SQS records whose body is such an event are unwrapped; an
``s3:TestEvent`` is ignored. Per request object (``messages.Request``): its samples are
taken from the object itself when it carries them (``inline``: the host's default for
batches up to 8 MB) or else read from ``datasets/`` (``.npy``, one GET each) and stacked
(``image_operations``: reading the samples, the request's GET included when it carries
them), the engine runs (``forward``), the output object is written to its
``output_key``, and then the request is moved to its ``completed_key`` (its JSON line is
written there and the input object deleted) by the instance's background mover thread,
after the handler has returned (the requests answered within ``MOVE_LINGER_S`` of each
other together, their input objects deleted by one ``DeleteObjects``): the host's
latency and the instance's next event never wait for the move. On AWS Lambda the
thread runs while an invocation is in progress (Lambda freezes the instance between
them), so a move may finish during the instance's next event, and the last ones of an
instance that is recycled may not happen: the host's clean-up deletes the run's
``input/`` either way. :meth:`Instance.settle` waits for the moves (the tests use it).
Failures after the request was read (a sample missing, the engine raising, outputs not
matching): an output with ``ok: false``, ``error_type`` and ``error_message``. A request
object that is not a request: an output with ``ok: false`` at the output key derived
from its input key (``input/<run>/<id>.json`` → ``output/<run>/<id>.json``). The handler
does not raise for those (a raising Lambda is retried by AWS, which would answer twice);
it raises only when it cannot write the output object at all. A repeated event (S3
delivers at least once) for a request already answered and moved is skipped, so a good
answer is never overwritten by a "not found". It returns
``{"ok": bool, "results": [{"request", "output", "ok", "error"}]}``.

The package must be importable as ``mlperf_pilot_fn`` with its ``messages`` copy:
``mlperf_pilot.serverless.package.stage_function(folder)`` writes that tree.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot_fn import messages
from mlperf_pilot_fn.engines import load_engine, select, usable_cores

LOG = logging.getLogger("mlperf_pilot_fn")
DEFAULT_MODEL_DIR = "/opt/python/mlperf_pilot_model"
MOVE_LINGER_S = 0.5  # the mover waits this long for more answered requests to move at once


@dataclass(frozen=True)
class Settings:
    backend: str
    model_file: str = ""
    model_key: str = ""
    model_dir: str = DEFAULT_MODEL_DIR
    bucket: str = ""
    s3_endpoint: str | None = None
    threads: int = 0
    input_layout: str = "NCHW"
    outputs: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    tmp: str = "/tmp"
    memory_mb: int | None = None
    instance: str = ""

    @classmethod
    def from_env(cls, env: Any = None) -> Settings:
        env = os.environ if env is None else env
        options = json.loads(env.get("MLPERF_FN_OPTIONS") or "{}")
        if not isinstance(options, dict):
            raise ValueError("MLPERF_FN_OPTIONS must be a JSON object")
        memory = env.get("MLPERF_FN_MEMORY_MB") or env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        return cls(
            backend=env.get("MLPERF_FN_BACKEND", ""),
            model_file=env.get("MLPERF_FN_MODEL_FILE", ""),
            model_key=env.get("MLPERF_FN_MODEL_KEY", ""),
            model_dir=env.get("MLPERF_FN_MODEL_DIR") or DEFAULT_MODEL_DIR,
            bucket=env.get("MLPERF_FN_BUCKET", ""),
            s3_endpoint=env.get("MLPERF_FN_S3_ENDPOINT") or None,
            threads=int(env.get("MLPERF_FN_THREADS") or 0),
            input_layout=env.get("MLPERF_FN_INPUT_LAYOUT") or "NCHW",
            outputs=tuple(n for n in (env.get("MLPERF_FN_OUTPUTS") or "").split(",") if n),
            options=tuple(sorted(options.items())),
            tmp=env.get("MLPERF_FN_TMP") or "/tmp",
            memory_mb=int(memory) if memory else None,
            instance=env.get("MLPERF_FN_INSTANCE", ""),
        )


class Instance:
    """One function instance: its S3 client and its engine, loaded once."""

    def __init__(self, settings: Settings, s3: Any = None) -> None:
        self.settings = settings
        self.s3 = s3
        self.engine: Any = None
        self.load_error: BaseException | None = None
        self.load_ms = 0.0
        self.answered = 0
        self._pool: ThreadPoolExecutor | None = None
        self._moves: list[tuple[str, str, str, bytes]] = []  # bucket, key, target, body
        self._moving = 0  # moves taken by the mover, not yet done
        self._hurry = False  # settle() is waiting: no lingering
        self._move_lock = threading.Condition()
        self._mover: threading.Thread | None = None

    def load(self) -> Instance:
        """The cold start: the S3 client, then (timed as ``load_model``) the engine's
        import, the model's download when it comes from the bucket, and its load."""
        started = time.perf_counter()
        try:
            if self.s3 is None:
                self.s3 = s3_client(self.settings)
            started = time.perf_counter()
            if not self.settings.backend:
                raise ValueError("MLPERF_FN_BACKEND is not set")
            self.engine = load_engine(
                self.settings.backend, self._model_path(),
                threads=self.settings.threads or usable_cores(),
                input_layout=self.settings.input_layout, options=dict(self.settings.options))
        except Exception as exc:  # reported in every answer, never raised at import
            LOG.error("model load failed: %s: %s", type(exc).__name__, exc)
            self.load_error = exc
        self.load_ms = (time.perf_counter() - started) * 1000.0
        return self

    def _model_path(self) -> Path | None:
        s = self.settings
        if s.backend == "null":
            return None
        if not s.model_key:
            return Path(s.model_dir) / s.model_file
        if not s.bucket:
            raise ValueError("MLPERF_FN_MODEL_KEY is set but MLPERF_FN_BUCKET is not")
        folder, _, name = s.model_key.rpartition("/")
        local = Path(s.tmp) / "mlperf_pilot_model" / folder.replace("/", "_")
        local.mkdir(parents=True, exist_ok=True)
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=s.bucket, Prefix=folder + "/" if folder else name)
        for page in pages:
            for item in page.get("Contents", []):
                target = local / item["Key"].rpartition("/")[2]
                if not target.is_file() or target.stat().st_size != item["Size"]:
                    self.s3.download_file(s.bucket, item["Key"], str(target))
        return local / (s.model_file or name)

    # ------------------------------------------------------------------------ events

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        results = [self.answer(bucket, key, context) for bucket, key in object_refs(event)]
        return {"ok": all(r["ok"] for r in results), "results": results}

    def answer(self, bucket: str, key: str, context: Any = None) -> dict[str, Any]:
        """Answer the request object ``key``: write its output object, move it."""
        start = time.time()
        cold, self.answered = self.answered == 0, self.answered + 1
        body = b""
        try:
            t0 = time.perf_counter()
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            get_ms = (time.perf_counter() - t0) * 1000.0
            request, inline = messages.Request.parse(body)
            _check(request)
        except Exception as exc:  # not a request: answer where its id says, if it can
            run_id, request_id, out_key, done_key = derived_keys(key)
            if _missing(exc) and out_key is not None and self._exists(bucket, out_key):
                # S3 delivers an event at least once: this request was answered and moved
                LOG.warning("%s was answered already (a repeated event)", key)
                return {"request": key, "output": out_key, "ok": True, "error": None,
                        "repeated": True}
            output = self._output(run_id, request_id, start, cold, context,
                                  error=exc)
            if out_key is None or done_key is None:
                LOG.error("%s is not a request and names no output key: %s", key, exc)
                return {"request": key, "output": None, "ok": False, "error": str(exc)}
            self._write(bucket, out_key, output)
            self._move_later(bucket, key, done_key, body[:1 << 20])
            return {"request": key, "output": out_key, "ok": False, "error": str(exc)}
        output = self._run(bucket, request, inline, get_ms, start, cold, context)
        self._write(bucket, request.output_key, output)
        self._move_later(bucket, key, request.completed_key, request.to_json())
        return {"request": key, "output": request.output_key, "ok": output.ok,
                "error": output.error_message}

    def _run(self, bucket: str, request: messages.Request, inline: np.ndarray | None,
             get_ms: float, start: float, cold: bool, context: Any) -> messages.Output:
        timings = messages.Timings(load_model=self.load_ms)
        try:
            if self.load_error is not None:
                raise ModelLoadError(f"the model did not load: "
                                     f"{type(self.load_error).__name__}: {self.load_error}")
            t0 = time.perf_counter()
            if inline is not None:  # the request carried them: no GET of datasets/
                batch = inline
                t0 -= get_ms / 1000.0
            else:
                batch = np.stack(self._samples(bucket, request.sample_keys))
            t1 = time.perf_counter()
            wanted = list(request.outputs) or list(self.settings.outputs)
            named = self.engine.run(batch, wanted)
            t2 = time.perf_counter()
            chosen = select(named, wanted)
            timings.image_operations = (t1 - t0) * 1000.0
            timings.forward = (t2 - t1) * 1000.0
            tensors = [messages.encode_tensor(name, np.asarray(value))
                       for name, value in chosen]
        except Exception as exc:
            return self._output(request.run_id, request.request_id, start, cold, context,
                                error=exc, timings=timings)
        output = self._output(request.run_id, request.request_id, start, cold, context,
                              timings=timings)
        output.tensors = tensors
        return output

    def _samples(self, bucket: str, keys: list[str]) -> list[np.ndarray]:
        def one(key: str) -> np.ndarray:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return np.load(io.BytesIO(body), allow_pickle=False)

        if len(keys) == 1:
            return [one(keys[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mlperf-fn-get")
        return list(self._pool.map(one, keys))

    def _output(self, run_id: str, request_id: str, start: float, cold: bool, context: Any,
                *, error: BaseException | None = None,
                timings: messages.Timings | None = None) -> messages.Output:
        memory = getattr(context, "memory_limit_in_mb", None) or self.settings.memory_mb
        instance = (getattr(context, "log_stream_name", None) or self.settings.instance
                    or f"pid-{os.getpid()}")
        return messages.Output(
            run_id=run_id, request_id=request_id, ok=error is None,
            error_type=type(error).__name__ if error is not None else None,
            error_message=_line(error) if error is not None else None,
            inf_perf=timings or messages.Timings(load_model=self.load_ms), cold=cold,
            start_time=start, finish_time=time.time(), instance=str(instance),
            memory_mb=int(memory) if memory else None)

    def _write(self, bucket: str, key: str, output: messages.Output) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=output.to_json(),
                           ContentType="application/json")

    def _exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ the mover

    def _move_later(self, bucket: str, key: str, target: str, body: bytes) -> None:
        """Queue the move of an answered request to ``completed/`` (``body`` there, the
        input object deleted) for the mover thread."""
        with self._move_lock:
            self._moves.append((bucket, key, target, body))
            self._move_lock.notify_all()
            if self._mover is None or not self._mover.is_alive():
                self._mover = threading.Thread(target=self._move_loop, daemon=True,
                                               name="mlperf-fn-mover")
                self._mover.start()

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued move is done; whether they were."""
        with self._move_lock:
            self._hurry = True
            self._move_lock.notify_all()
            try:
                return self._move_lock.wait_for(
                    lambda: not self._moves and not self._moving, timeout=timeout_s)
            finally:
                self._hurry = False

    def _move_loop(self) -> None:
        while True:
            with self._move_lock:
                self._move_lock.wait_for(lambda: bool(self._moves))
                # a moment for more, so that one DeleteObjects deletes several
                self._move_lock.wait_for(lambda: self._hurry or len(self._moves) >= 100,
                                         timeout=MOVE_LINGER_S)
                moves, self._moves = self._moves, []
                self._moving = len(moves)
            try:
                self._move_all(moves)
            finally:
                with self._move_lock:
                    self._moving = 0
                    self._move_lock.notify_all()

    def _move_all(self, moves: list[tuple[str, str, str, bytes]]) -> None:
        moved: dict[str, list[str]] = {}
        for bucket, key, target, body in moves:
            try:
                self.s3.put_object(Bucket=bucket, Key=target, Body=body,
                                   ContentType="application/json")
                moved.setdefault(bucket, []).append(key)
            except Exception as exc:  # the answer matters more than the move
                LOG.warning("could not move %s to %s: %s", key, target, exc)
        for bucket, keys in moved.items():
            for first in range(0, len(keys), 1000):
                try:
                    self.s3.delete_objects(Bucket=bucket, Delete={
                        "Objects": [{"Key": k} for k in keys[first:first + 1000]],
                        "Quiet": True})
                except Exception as exc:
                    LOG.warning("could not delete %d answered request(s): %s", len(keys), exc)


class ModelLoadError(RuntimeError):
    """The instance's model did not load at its cold start."""


def object_refs(event: Any) -> list[tuple[str, str]]:
    """(bucket, key) of each S3 object the event names (SQS-wrapped S3 events too)."""
    refs: list[tuple[str, str]] = []
    if not isinstance(event, dict):
        return refs
    if event.get("Event") == "s3:TestEvent":
        return refs
    for record in event.get("Records") or []:
        if not isinstance(record, dict):
            continue
        if record.get("eventSource") == "aws:sqs":
            try:
                refs.extend(object_refs(json.loads(record.get("body") or "{}")))
            except ValueError:
                LOG.warning("an SQS record whose body is not JSON was ignored")
            continue
        s3 = record.get("s3")
        if not isinstance(s3, dict):
            continue
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")
        if bucket and key:
            refs.append((bucket, urllib.parse.unquote_plus(key)))
    return refs


def derived_keys(key: str) -> tuple[str, str, str | None, str | None]:
    """(run id, request id, output key, completed key) from an input key
    ``<prefix>input/<run>/<id>.json``; the keys are None for a key not of that form."""
    head, _, name = key.rpartition("/")
    prefix_input, _, run_id = head.rpartition("/")
    request_id = name[:-5] if name.endswith(".json") else name
    if not run_id or not (prefix_input + "/").endswith(messages.INPUT):
        return run_id, request_id, None, None
    prefix = (prefix_input + "/")[: -len(messages.INPUT)]
    return (run_id, request_id, messages.output_key(run_id, request_id, prefix),
            messages.completed_key(run_id, request_id, prefix))


def s3_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    # no CRC32 of every body unless the operation requires one (moto checks what is sent)
    return boto3.client("s3", endpoint_url=settings.s3_endpoint,
                        config=Config(max_pool_connections=16,
                                      retries={"max_attempts": 3, "mode": "standard"},
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


def _check(request: messages.Request) -> None:
    if not request.sample_keys or not all(isinstance(k, str) for k in request.sample_keys):
        raise messages.MessageError("the request names no samples")
    if not isinstance(request.output_key, str) or not request.output_key:
        raise messages.MessageError("the request names no output key")
    if not isinstance(request.outputs, list):
        raise messages.MessageError("the request's outputs is not a list")


def _missing(exc: BaseException) -> bool:
    """Whether an S3 error says the object is not there (botocore's NoSuchKey, a 404)."""
    error = getattr(exc, "response", None)
    code = str((error or {}).get("Error", {}).get("Code", "")) if isinstance(error, dict) \
        else ""
    return code in ("NoSuchKey", "404", "NotFound")


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _cold_start() -> Instance:
    try:
        settings = Settings.from_env()
    except Exception as exc:  # bad settings: every answer says so
        instance = Instance(Settings(backend="", s3_endpoint=os.environ.get(
            "MLPERF_FN_S3_ENDPOINT") or None))
        instance.load_error = exc
        try:
            instance.s3 = s3_client(instance.settings)
        except Exception:  # no client: the handler cannot answer at all, and raises
            LOG.exception("no S3 client")
        return instance
    return Instance(settings).load()


# the global scope: once per instance (Lambda's init phase, a pool worker's first import)
INSTANCE = _cold_start()


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """AWS Lambda's entry point."""
    return INSTANCE.handle(event, context)

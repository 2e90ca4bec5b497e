"""``--functions local``: a pool of worker processes that stands in for AWS Lambda.

**Instances.** One process per concurrent instance (``concurrency`` of them), each
running the same handler as the deployed function (``mlperf_pilot_fn.handler.handler``,
imported from the tree ``serverless package`` puts in function.zip, staged by
``package.stage_function`` into the pool's own temporary folder), one event at a time,
as Lambda runs one event per instance. An instance is started cold: the handler loads
its model on its first invocation (the output's ``cold`` flag says so), and an instance
that died is started again, cold, for its next event. Each gets the environment Lambda
gives (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, ...) plus the
handler's own variables, and a context object with Lambda's attributes
(``aws_request_id``, ``function_name``, ``memory_limit_in_mb``, ``log_stream_name``,
``get_remaining_time_in_millis()``). Credentials reach it only by inheritance of this
process's environment (boto3's chain): never in argv or a file.

**The memory size** is applied twice, as Lambda ties CPU to memory: as a memory limit (a
cgroup v1 memory limit under this process's own cgroup where it is writable, else
``RLIMIT_AS``, which counts address space and so is stricter than Lambda) and as a CPU
share of ``memory_mb / 1769`` vCPUs (a cgroup v1 CPU quota where writable, else only the
engine's thread count, ``ServerlessSutConfig.function_threads``). :class:`Confinement`
says which (``describe()``), and the record keeps it.

**Events.** A dispatcher thread long-polls the SQS queue subscribed to ``input/`` (the same
S3 PUT events Lambda's trigger gets), has each message deleted right after its events
were queued (the queue's deleter thread, several in one ``DeleteMessageBatch``; an
asynchronous invoke: at most once here), drops events of runs this pool does not serve (an earlier
run's leftovers) and queues one single-record S3 event per request. One feeder thread
per instance hands the next event to its process over a pipe (one JSON line each way)
and waits for the answer.

**Failures**, written on the function's behalf as an ``ok: false`` output object (what
Lambda's error object says: ``errorType``, ``errorMessage``), so the host counts the
samples failed and reads why: a handler that raised (its type and message), an
instance that died mid-request (``Runtime.ExitError`` with the signal or exit code),
an instance over its memory limit (``Runtime.OutOfMemory``: the cgroup's OOM killer,
or a MemoryError under ``RLIMIT_AS``). A handler that never answers is the host's
timeout; :meth:`LocalFunctionPool.stop` ends every instance by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HANDLER = "mlperf_pilot_fn.handler.handler"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769
POLL_S = 1  # the dispatcher's long poll; stop() waits at most this long for it
_STOP = object()


@dataclass
class Confinement:
    """How the memory size is applied to the instances here (see the module doc)."""

    memory_mb: int
    memory: str = "rlimit_as"  # "cgroup" or "rlimit_as"
    cpu: str = "threads"  # "cgroup_quota" or "threads"
    threads: int = 1
    cgroups: dict[str, Path] = field(default_factory=dict)  # controller -> this pool's folder

    @property
    def vcpus(self) -> float:
        return self.memory_mb / MB_PER_VCPU

    def words(self) -> str:
        memory = ("a cgroup v1 memory limit" if self.memory == "cgroup"
                  else "RLIMIT_AS (address space)")
        cpu = (f"a cgroup CPU quota of {self.vcpus:.2f} vCPU" if self.cpu == "cgroup_quota"
               else f"{self.threads} engine thread(s) (no writable cgroup CPU controller)")
        return f"{self.memory_mb} MB as {memory}; CPU share as {cpu}"

    @classmethod
    def choose(cls, memory_mb: int, threads: int, *, name: str,
               root: Path = CGROUP_ROOT) -> Confinement:
        """cgroups where this process may make them (one folder per pool under its own
        cgroup of each controller), else the fallbacks."""
        found = cls(memory_mb=memory_mb, threads=threads)
        for controller in ("memory", "cpu"):
            folder = _own_cgroup(root, controller)
            if folder is None:
                continue
            _remove_stale(folder)
            target = folder / name
            try:
                target.mkdir(exist_ok=True)
                (target / "tasks").stat()
            except OSError:
                continue
            found.cgroups[controller] = target
        if "memory" in found.cgroups:
            found.memory = "cgroup"
        if "cpu" in found.cgroups:
            found.cpu = "cgroup_quota"
        return found

    def instance_cgroups(self, number: int) -> dict[str, Path]:
        """One child cgroup per instance (a Lambda instance has its own memory and CPU),
        its limits written."""
        made: dict[str, Path] = {}
        for controller, folder in self.cgroups.items():
            target = folder / f"instance-{number}"
            try:
                target.mkdir(exist_ok=True)
                if controller == "memory":
                    limit = str(self.memory_mb * 1024 * 1024)
                    (target / "memory.limit_in_bytes").write_text(limit)
                    swap = target / "memory.memsw.limit_in_bytes"
                    if swap.exists():
                        swap.write_text(limit)
                else:
                    (target / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                    quota = max(1000, int(self.vcpus * CPU_PERIOD_US))
                    (target / "cpu.cfs_quota_us").write_text(str(quota))
            except OSError:
                continue
            made[controller] = target
        return made

    def remove(self) -> None:
        """Remove this pool's cgroup folders (after its processes ended)."""
        for folder in self.cgroups.values():
            for child in sorted(folder.glob("instance-*")):
                _rmdir(child)
            _rmdir(folder)


def _own_cgroup(root: Path, controller: str) -> Path | None:
    """This process's cgroup folder of a v1 controller, where it is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            folder = root / controller / path.lstrip("/")
            return folder if folder.is_dir() else None
    return None


def _remove_stale(folder: Path) -> None:
    """Remove the empty cgroups of pools whose process is gone (one that was killed)."""
    for stale in folder.glob("mlperf-pilot-*-*"):
        try:
            pid = int(stale.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for child in stale.glob("instance-*"):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            stale.rmdir()


def _rmdir(folder: Path) -> None:
    for _ in range(20):  # the kernel frees a cgroup a moment after its last task ends
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


@dataclass
class Invocation:
    """One event for one instance."""

    event: dict[str, Any]
    run_id: str
    request_id: str
    output_key: str


class Instance:
    """One worker process standing in for one Lambda instance."""

    def __init__(self, pool: LocalFunctionPool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.name = f"local-{number}"
        self.process: subprocess.Popen[bytes] | None = None
        self.cgroups: dict[str, Path] = {}
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.starts += 1
        pool = self.pool
        self.cgroups = pool.confinement.instance_cgroups(self.number)
        tmp = pool.work / self.name
        tmp.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(pool.environment)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": pool.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(pool.confinement.memory_mb),
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{self.name}/{self.starts}",
            "MLPERF_FN_TMP": str(tmp),  # an instance's own /tmp, as in Lambda
            "PYTHONPATH": os.pathsep.join(
                [str(p) for p in pool.code_paths] +
                [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        })
        rlimit = "0" if pool.confinement.memory == "cgroup" else str(
            pool.confinement.memory_mb * 1024 * 1024)
        command = [sys.executable, str(Path(__file__).resolve()), "instance",
                   pool.handler, rlimit]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=pool.stderr,
            env=env, close_fds=True)
        for folder in self.cgroups.values():  # before its first event: the model load
            with contextlib.suppress(OSError):
                (folder / "cgroup.procs").write_text(str(self.process.pid))

    def invoke(self, call: Invocation, timeout_ms: int) -> dict[str, Any]:
        """The instance's answer: {"ok": true} or {"ok": false, "errorType", ...}."""
        self.ensure_running()
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        message = {"event": call.event, "request_id": call.request_id,
                   "deadline_ms": int(time.time() * 1000) + timeout_ms}
        oom_before = self._oom_kills()
        try:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if line:
            try:
                answer: dict[str, Any] = json.loads(line)
                return answer
            except ValueError:
                return {"ok": False, "errorType": "Runtime.InvalidResponse",
                        "errorMessage": f"instance {self.name} wrote a line that is not JSON"}
        code = process.wait()
        return self._death(code, oom_before)

    def _death(self, code: int, oom_before: int) -> dict[str, Any]:
        how = (f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
        if self.pool.stopping:
            return {"ok": False, "errorType": "Runtime.ExitError",
                    "errorMessage": f"instance {self.name} stopped with the pool ({how})"}
        if self._oom_kills() > oom_before or (code == -signal.SIGKILL and
                                               self.pool.confinement.memory == "cgroup"):
            return {"ok": False, "errorType": "Runtime.OutOfMemory",
                    "errorMessage": f"instance {self.name} exceeded its memory limit of "
                    f"{self.pool.confinement.memory_mb} MB and was killed ({how})"}
        return {"ok": False, "errorType": "Runtime.ExitError",
                "errorMessage": f"instance {self.name} exited during the request ({how})"}

    def _oom_kills(self) -> int:
        folder = self.cgroups.get("memory")
        if folder is None:
            return 0
        try:
            for line in (folder / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the process by its PID (SIGTERM, then SIGKILL)."""
        process = self.process
        if process is None:
            return
        from mlperf_pilot.oip.process import stop_process

        stop_process(process, timeout_s=timeout_s)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class LocalFunctionPool:
    """``instances`` local instances fed by ``events`` (the bucket's local input queue,
    :class:`~mlperf_pilot.serverless.bucket.EventQueue`) for the bucket ``bucket``
    (:class:`~mlperf_pilot.serverless.bucket.Bucket`); see the module doc."""

    def __init__(self, *, bucket: Any, events: Any, instances: int, memory_mb: int,
                 threads: int, environment: dict[str, str], function_name: str,
                 request_timeout_ms: int, handler: str = HANDLER,
                 code_paths: Iterable[Path] | None = None, extra_code: Iterable[Path] = (),
                 stderr: Any = None) -> None:
        self.bucket = bucket
        self.events = events
        self.environment = dict(environment)
        self.function_name = function_name
        self.request_timeout_ms = request_timeout_ms
        self.handler = handler
        self.work = Path(tempfile.mkdtemp(prefix="mlperf-pilot-functions-"))
        if code_paths is None:  # the function's package, as function.zip holds it
            from mlperf_pilot.serverless.package import stage_function

            code_paths = [stage_function(self.work / "task")]
        self.code_paths = [*extra_code, *code_paths]  # another handler's code first
        self.stderr = stderr
        self.confinement = Confinement.choose(memory_mb, threads,
                                              name=f"mlperf-pilot-{os.getpid()}-{id(self):x}")
        self.instances = [Instance(self, n) for n in range(max(1, instances))]
        self.runs: set[str] = set()
        self.stopping = False
        self.dispatch_error: str | None = None
        self.dropped = 0
        self.failures_written = 0
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def serve(self, run_id: str) -> None:
        """Take the events of this run (others are dropped as leftovers)."""
        self.runs.add(run_id)

    def start(self) -> None:
        """Start every instance (cold: no model loaded yet) and the threads."""
        if self._threads:
            return
        for instance in self.instances:
            instance.ensure_running()
        self._threads.append(threading.Thread(target=self._dispatch, daemon=True,
                                              name="local-functions-dispatch"))
        for instance in self.instances:
            self._threads.append(threading.Thread(target=self._feed, args=(instance,),
                                                  daemon=True, name=f"{instance.name}-feed"))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the dispatcher, end every instance by its PID, remove the cgroups."""
        self.stopping = True
        for _ in self.instances:
            self._calls.put(_STOP)
        for instance in self.instances:
            instance.stop()
        for thread in self._threads:
            thread.join(timeout=POLL_S + 10)
        self._threads = []
        self.events.close()  # the deferred deletes of the last messages
        self.confinement.remove()
        shutil.rmtree(self.work, ignore_errors=True)

    def pids(self) -> list[int]:
        return [i.pid for i in self.instances if i.pid is not None
                and i.process is not None and i.process.poll() is None]

    def describe(self) -> dict[str, str | int | float]:
        return {"local_instances": len(self.instances),
                "local_memory_limit": self.confinement.memory,
                "local_cpu_share": self.confinement.cpu,
                "local_threads": self.confinement.threads,
                "local_vcpus": round(self.confinement.vcpus, 3),
                "local_instance_starts": sum(i.starts for i in self.instances)}

    # ---------------------------------------------------------------------- threads

    def _dispatch(self) -> None:
        while not self.stopping:
            try:
                found = self.events.receive(wait_s=POLL_S, defer_delete=True)
            except Exception as exc:  # the endpoint went away: keep trying until stopped
                self.dispatch_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
                continue
            for event in found:
                ids = input_ids(event.key, self.bucket.prefix)
                if ids is None or ids[0] not in self.runs:
                    self.dropped += 1  # an earlier run's leftover, or not a request
                    continue
                run_id, request_id = ids
                from mlperf_pilot.serverless.messages import output_key

                self._calls.put(Invocation(_s3_event(event.bucket, event.key), run_id,
                                           request_id,
                                           output_key(run_id, request_id, self.bucket.prefix)))

    def _feed(self, instance: Instance) -> None:
        while True:
            call = self._calls.get()
            if call is _STOP or self.stopping:
                return
            answer = instance.invoke(call, self.request_timeout_ms)
            if answer.get("ok") or self.stopping:
                continue
            self._write_failure(call, instance, answer)

    def _write_failure(self, call: Invocation, instance: Instance,
                       answer: dict[str, Any]) -> None:
        """The function's error object as an ``ok: false`` output, for the host."""
        from mlperf_pilot.serverless.messages import Output

        now = time.time()
        output = Output(run_id=call.run_id, request_id=call.request_id, ok=False,
                        error_type=str(answer.get("errorType") or "Runtime.Unknown"),
                        error_message=str(answer.get("errorMessage") or "")[:2000],
                        start_time=now, finish_time=now, instance=instance.name,
                        memory_mb=self.confinement.memory_mb)
        try:
            self.bucket.put(call.output_key, output.to_json())
            self.failures_written += 1
        except Exception as exc:  # the host then times the request out
            self.dispatch_error = f"{type(exc).__name__}: {exc}"


def input_ids(key: str, prefix: str = "") -> tuple[str, str] | None:
    """(run id, request id) of a request key ``<prefix>input/<run>/<id>.json``, else None."""
    from mlperf_pilot.serverless.messages import INPUT

    head = f"{prefix}{INPUT}"
    if not key.startswith(head) or not key.endswith(".json"):
        return None
    run_id, _, name = key[len(head):].partition("/")
    if not run_id or not name or "/" in name:
        return None
    return run_id, name[: -len(".json")]


def _s3_event(bucket: str, key: str) -> dict[str, Any]:
    """The S3 event Lambda's trigger hands the function (its key URL-encoded, as S3's)."""
    from urllib.parse import quote_plus

    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                         "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                                "object": {"key": quote_plus(key, safe="")}}}]}


# ------------------------------------------------------------------- the instance's side


class LocalContext:
    """What Lambda's Python runtime hands the handler as ``context``."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = f"/local/{self.function_name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.invoked_function_arn = f"arn:local:lambda:::function:{self.function_name}"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _instance_main(handler_name: str, rlimit_bytes: int) -> int:
    """One instance: read events from stdin, answer on the original stdout (the
    handler's prints go to stderr)."""
    import importlib
    import resource

    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # this file's folder is no place to import the handler from
    _die_with_parent()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if rlimit_bytes > 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_bytes, rlimit_bytes))
    module_name, _, attr = handler_name.rpartition(".")
    handler: Any = None
    import_error: dict[str, Any] | None = None
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if handler is None and import_error is None:
            try:  # Lambda's init phase: the module's global scope
                handler = getattr(importlib.import_module(module_name), attr)
            except BaseException as exc:
                import_error = _error("Runtime.ImportModuleError", exc)
        if import_error is not None:
            answer = import_error
        else:
            try:
                handler(message["event"], LocalContext(message["request_id"],
                                                       int(message["deadline_ms"])))
                answer = {"ok": True}
            except MemoryError as exc:
                answer = _error("Runtime.OutOfMemory", exc)
            except BaseException as exc:
                answer = _error(type(exc).__name__, exc)
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()
    return 0


def _error(kind: str, exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if kind.startswith("Runtime.") and kind != "Runtime.OutOfMemory":
        message = f"{type(exc).__name__}: {message}"
    return {"ok": False, "errorType": kind, "errorMessage": message}


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "instance":
    raise SystemExit(_instance_main(sys.argv[2], int(sys.argv[3])))


__all__ = ["HANDLER", "Confinement", "Instance", "LocalContext",
           "LocalFunctionPool", "input_ids"]

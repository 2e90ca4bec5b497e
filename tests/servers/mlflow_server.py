"""A real MLflow tracking server on 127.0.0.1, with a SQLite backend store.

    with start_mlflow_server(work_dir) as server:
        server.url  # http://127.0.0.1:PORT, the tracking URI

runs ``mlflow server --host 127.0.0.1 --port <free> --backend-store-uri
sqlite:///<work_dir>/mlflow.sqlite --artifacts-destination <work_dir>/artifacts
--workers 1`` with the python of MLflow's own venv (mlflow_env.py) in a session of its
own, waits until ``/health`` answers 200 (~20-25 s here; a fresh port and a new start,
up to 3 times, if the port was taken meanwhile) and at the end stops it by its PID: the
server's process group and every process descended from it that was seen (uvicorn's
worker; MLflow's ``_job_runner`` and its huey consumers when jobs are on), SIGTERM
first, SIGKILL for whatever lingers.

MLflow's job runner (``jobs=True``) serves features the tests do not use and starts
seven huey consumers that ignore SIGTERM for seconds; it is off by default
(``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``). The log goes to
``work_dir/mlflow-server.log``. The pytest fixture ``mlflow_server`` (tests/conftest.py)
wraps this and skips, with the cause, where the venv cannot be made.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servers.mlflow_env import venv_python
from servers.mlserver import free_port

READY_TIMEOUT_S = 180.0  # ~20-25 s here, more on a loaded machine
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3
_PORT_TAKEN = "address already in use"


def descendants(pid: int) -> list[int]:
    """Every live process descended from ``pid`` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    port: int
    work_dir: Path
    started_in_s: float = 0.0  # from the start to /health answering 200
    seen: set[int] = field(default_factory=set)  # descendants seen while it ran
    stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.work_dir / "mlflow-server.log"

    @property
    def artifacts(self) -> Path:
        return self.work_dir / "artifacts"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def note_children(self) -> list[int]:
        """Record (and return) the server's descendants now."""
        found = descendants(self.pid)
        self.seen.update(found)
        return found

    def stop(self) -> None:
        """SIGTERM to the server's group and each descendant seen, by PID; SIGKILL to
        whatever is left after STOP_TIMEOUT_S."""
        if self.stopped:
            return
        self.stopped = True
        self.note_children()
        pids = [self.pid, *sorted(self.seen)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            for pid in pids[1:]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.2)
                if not any(alive(pid) for pid in pids):
                    return


def _server_env(jobs: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")
           and not key.startswith("MLFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true" if jobs else "false"
    return env


def _wait_ready(server: MlflowServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {server.process.returncode} "
                                   f"before it was ready:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    return
            server.note_children()
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server was not ready after {timeout:.0f} s:\n"
                       f"{server.log_tail()}")


@contextlib.contextmanager
def start_mlflow_server(work_dir: Path, *, jobs: bool = False,
                        ready_timeout_s: float = READY_TIMEOUT_S,
                        python: Path | None = None) -> Iterator[MlflowServer]:
    """A ready MLflow tracking server keeping its runs in ``work_dir``; stopped by PID on
    exit. Raises servers.mlflow_env.VenvUnavailable when MLflow's venv cannot be made."""
    python = Path(python or venv_python())
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "artifacts").mkdir(exist_ok=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        argv = [str(python), "-m", "mlflow", "server", "--host", "127.0.0.1",
                "--port", str(port),
                "--backend-store-uri", f"sqlite:///{work_dir / 'mlflow.sqlite'}",
                "--artifacts-destination", str(work_dir / "artifacts"), "--workers", "1"]
        started = time.monotonic()
        with open(work_dir / "mlflow-server.log", "wb") as log:
            process = subprocess.Popen(argv, cwd=work_dir, env=_server_env(jobs),
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        server = MlflowServer(process, port, work_dir)
        try:
            _wait_ready(server, ready_timeout_s)
        except RuntimeError:
            server.stop()
            if attempt < PORT_ATTEMPTS and _PORT_TAKEN in server.log_tail(20000).lower():
                continue
            raise
        break
    server.started_in_s = time.monotonic() - started
    server.note_children()
    try:
        yield server
    finally:
        server.stop()

"""MLServer, real, on 127.0.0.1, serving an ONNX file through the tests' own runtime.

    with start_mlserver(model_path, work_dir, name="efficientnet-lite0-demo",
                        intra_op_threads=1) as server:
        server.url  # http://127.0.0.1:PORT (the Open Inference Protocol v2 REST routes)

writes ``settings.json`` (host 127.0.0.1, a free HTTP port, a free gRPC port on
127.0.0.1 as MLServer always starts gRPC, ``parallel_workers`` 0 so inference runs in
the server process itself, the metrics server off) and ``<name>/model-settings.json``
(``onnx_runtime.OnnxModel`` from ``mlserver_runtime/``) into ``work_dir``, runs
``mlserver start work_dir`` with the python of MLServer's own venv (mlserver_env.py) in
a process group of its own, waits until ``/v2/health/ready`` and the model's ready route
answer 200 (fresh ports and a new start, up to 3 times, if a port was taken meanwhile),
and at the end stops that group by the server's PID (SIGTERM, then SIGKILL).
Its stdout and stderr go to ``work_dir/mlserver.log``. The pytest fixture ``mlserver``
(tests/conftest.py) wraps this and skips, with the cause, where the venv cannot be made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servers.mlserver_env import venv_python

RUNTIME_DIR = Path(__file__).resolve().parent / "mlserver_runtime"
IMPLEMENTATION = "onnx_runtime.OnnxModel"
READY_TIMEOUT_S = 120.0  # 1.5-2 s here; 12-13 s has been seen on a loaded machine
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3
_PORT_TAKEN = "address already in use"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MLServerProcess:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    model_name: str
    work_dir: Path
    started_in_s: float = 0.0  # from the start to both ready routes answering 200
    stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.work_dir / "mlserver.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group (its PID), SIGKILL if it lingers."""
        if self.stopped:
            return
        self.stopped = True
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # the group MLServer leads: it and children
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # any child left behind
            os.killpg(self.process.pid, signal.SIGKILL)


def _address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host order, little
    endian here), IPv4-mapped IPv6 given as the IPv4 address."""
    raw = bytes.fromhex(hex_address)
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    host, port = fields[1].split(":")
                    found.append((_address(host), int(port, 16)))
    return sorted(found)


def write_settings(work_dir: Path, model_path: Path, *, name: str, http_port: int,
                   grpc_port: int, intra_op_threads: int = 1, run_in_thread: bool = False,
                   max_batch_size: int = 0, max_batch_time_s: float = 0.0) -> None:
    """settings.json and <name>/model-settings.json for ``mlserver start work_dir``.
    ``max_batch_size``/``max_batch_time_s``: MLServer's adaptive batching (0: off)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "metrics").mkdir(exist_ok=True)
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": 0,
        "metrics_endpoint": None,  # no metrics server (it would listen on a third port)
        "metrics_dir": str(work_dir / "metrics"),
        "environments_dir": str(work_dir / "envs"),
        "load_models_at_startup": True,
    }
    (work_dir / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    model_dir = work_dir / name
    model_dir.mkdir(exist_ok=True)
    model_settings = {
        "name": name,
        "implementation": IMPLEMENTATION,
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
        "parameters": {
            "uri": str(Path(model_path).resolve()),
            "extra": {"intra_op_threads": intra_op_threads, "run_in_thread": run_in_thread},
        },
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2),
                                                   encoding="utf-8")


def _server_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("MLSERVER_")}
    env["PYTHONPATH"] = str(RUNTIME_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_ready(server: MLServerProcess, timeout: float) -> None:
    routes = ("/v2/health/ready", f"/v2/models/{server.model_name}/ready")
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"MLServer exited with {server.process.returncode} before "
                                   f"it was ready:\n{server.log_tail()}")
            try:
                if all(client.get(route).status_code == 200 for route in routes):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"MLServer was not ready after {timeout:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def start_mlserver(model_path: Path, work_dir: Path, *, name: str, intra_op_threads: int = 1,
                   run_in_thread: bool = False, max_batch_size: int = 0,
                   max_batch_time_s: float = 0.0, ready_timeout_s: float = READY_TIMEOUT_S,
                   python: Path | None = None) -> Iterator[MLServerProcess]:
    """A ready MLServer serving ``model_path`` as ``name``; stopped by PID on exit.
    Raises servers.mlserver_env.VenvUnavailable when MLServer's venv cannot be made."""
    python = python or venv_python()
    mlserver = Path(python).parent / "mlserver"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        # a port found free may be taken before MLServer binds it: then fresh ports
        http_port, grpc_port = free_port(), free_port()
        while grpc_port == http_port:
            grpc_port = free_port()
        write_settings(work_dir, model_path, name=name, http_port=http_port,
                       grpc_port=grpc_port, intra_op_threads=intra_op_threads,
                       run_in_thread=run_in_thread, max_batch_size=max_batch_size,
                       max_batch_time_s=max_batch_time_s)
        started = time.monotonic()
        with open(work_dir / "mlserver.log", "wb") as log:
            process = subprocess.Popen([str(mlserver), "start", str(work_dir)], cwd=work_dir,
                                       env=_server_env(), stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        server = MLServerProcess(process, http_port, grpc_port, name, work_dir)
        try:
            _wait_ready(server, ready_timeout_s)
        except RuntimeError:
            server.stop()
            if attempt < PORT_ATTEMPTS and _PORT_TAKEN in server.log_tail(20000):
                continue
            raise
        break
    server.started_in_s = time.monotonic() - started
    try:
        yield server
    finally:
        server.stop()

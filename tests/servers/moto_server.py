"""Start and stop a real moto server (S3, SQS, Lambda, IAM ... over HTTP) on 127.0.0.1.

    from servers.moto_server import moto_server          # tests/ is on sys.path

    with moto_server(log_dir=tmp_path) as moto:
        boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")

``start_moto_server(log_dir=...)`` runs ``python -m moto.server -H 127.0.0.1 -p PORT``
from this interpreter (the venv's moto) on a free port, with stdout and stderr in
``log_dir/moto-server-N.log``, waits until it answers HTTP, and returns a
:class:`MotoServer` (URL, port, PID, log). ``reset()`` empties every backend (moto's
``/moto-api/reset``), so one server can serve a module's tests one after another.
``stop()`` sends SIGTERM to that PID, kills it after ``timeout_s``, and returns the exit
code. A server that exits before it answers (a port taken in between) is started again
on another port, up to three times, then :class:`ServerStartError` with the log's tail.

It never binds anything but 127.0.0.1, and it knows no credentials: tests give boto3
dummy ones through the environment (the ``aws_env`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.oip.process import stop_process

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
_numbers = itertools.count(1)


class ServerStartError(RuntimeError):
    pass


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def reset(self) -> None:
        """Empty every moto backend (buckets, queues, functions, roles ...)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Signal the server's PID, wait for it, kill it past ``timeout_s``; its exit code."""
        code = stop_process(self.process, sig, timeout_s)
        assert code is not None
        return code


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_moto_server(*, log_dir: Path, timeout_s: float = START_TIMEOUT_S,
                      attempts: int = 3) -> MotoServer:
    """A moto server on 127.0.0.1, answering (see the module doc)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    failure = ""
    for _ in range(attempts):
        port = free_port()
        log = log_dir / f"moto-server-{next(_numbers)}.log"
        command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        environment = dict(os.environ)
        # moto needs no credentials of its own; make sure it never sees real ones
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
            environment.pop(name, None)
        with open(log, "wb") as handle:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle,
                                       stderr=subprocess.STDOUT, env=environment)
        server = MotoServer(process, f"http://{HOST}:{port}", port, log)
        deadline = time.monotonic() + timeout_s
        while True:
            if _answers(server.url):
                return server
            if process.poll() is not None:
                failure = (f"moto server exited with {process.returncode} before it "
                           f"answered:\n{_tail(server.log_text())}")
                break
            if time.monotonic() > deadline:
                server.stop()
                raise ServerStartError(f"moto server did not answer within {timeout_s:.0f} s:"
                                       f"\n{_tail(server.log_text())}")
            time.sleep(0.05)
    raise ServerStartError(failure)


@contextmanager
def moto_server(*, log_dir: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[MotoServer]:
    """A moto server for the ``with`` block, stopped by its PID afterwards."""
    server = start_moto_server(log_dir=log_dir, timeout_s=timeout_s)
    try:
        yield server
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as response:
            response.read()
        return True
    except urllib.error.HTTPError:
        return True  # it answered, even if not with 200
    except OSError:
        return False


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


__all__ = ["HOST", "MotoServer", "ServerStartError", "free_port", "moto_server",
           "start_moto_server"]

"""A ``mlperf-pilot serve`` process started by this tool (the OIP benchmarks) or by the
tests: started with its output in a log file, ready once the command's ready line
(``serving <model> on http://127.0.0.1:PORT ...``) is in that log, stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.errors import SutError

# what cli/serve_cmd.py prints once the server answers
READY = re.compile(r"^serving (\S+) on (http://127\.0\.0\.1:(\d+)) ", re.MULTILINE)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout_s: float = 20.0) -> int | None:
    """Send ``sig`` to a child's PID (not yet ended), wait for it, SIGKILL it past
    ``timeout_s``; its exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class ServeProcess:
    """A running ``mlperf-pilot serve`` (by PID)."""

    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    model: str  # the served model name
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def model_url(self, route: str = "") -> str:
        """``/v2/models/<model><route>`` on this server (route e.g. "/infer")."""
        return f"{self.url}/v2/models/{self.model}{route}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        """Signal the PID (SIGTERM: the server drains and exits 0), SIGKILL past
        ``timeout_s``; the exit code."""
        return stop_process(self.process, sig, timeout_s)


def start_serve(command: Sequence[str], *, log: Path, env: Mapping[str, str],
                timeout_s: float, args: Sequence[str] = ()) -> ServeProcess:
    """Run ``command`` (a ``serve`` command line) with its output in ``log`` and wait for
    its ready line; SutError with the log's last lines when it exits or is not ready in
    ``timeout_s`` (the process is stopped then)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as handle:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT, env=dict(env))
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text(encoding="utf-8", errors="replace")
        found = READY.search(text)
        if found:
            return ServeProcess(process, found.group(2), found.group(1), log)
        if process.poll() is not None or time.monotonic() > deadline:
            server = ServeProcess(process, "", "", log)
            server.stop(timeout_s=5)
            tail = "\n".join(text.strip().splitlines()[-20:]) or "(no output)"
            raise SutError(f"mlperf-pilot serve {' '.join(args)} was not ready "
                           f"(exit {process.returncode}): {tail.splitlines()[-1]}",
                           hint=f"see {log}:\n{tail}")
        time.sleep(0.05)


__all__ = ["READY", "ServeProcess", "start_serve", "stop_process"]

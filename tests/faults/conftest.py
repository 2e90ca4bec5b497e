"""The fault and bad-input suite: the CLI as a careless user or a flaky machine meets it.

Every case runs the real ``mlperf-pilot`` command — in-process through ``main()`` for
fast bad-input cases (``cli``), or as a real process for signals and crashes
(``spawn_cli``) — in a temp dir with an isolated cache, and asserts three things: the
exit code, that the message is one clean line of cause plus one of fix (never a
traceback, never "internal error"), and what is on disk afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faultkit
import pytest
from faultkit import CliResult

from cli_runner import cli_runner

CONSOLE_SCRIPT = Path(sys.executable).with_name("mlperf-pilot")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., CliResult]:
    """Run ``mlperf-pilot ARGS`` in-process, in tmp_path (so ./results and the targets
    file land there)."""
    monkeypatch.chdir(tmp_path)
    return cli_runner(capsys)


@dataclass
class Spawned:
    """A real ``mlperf-pilot`` process in its own process group."""

    process: subprocess.Popen[str]
    cwd: Path

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0,
                 what: str = "the condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                out, err = self.process.communicate()
                raise AssertionError(f"exited {self.process.returncode} before {what}:\n"
                                     f"{out[-2000:]}\n{err[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float = 120.0) -> CliResult:
        out, err = self.process.communicate(timeout=timeout)
        return CliResult(self.process.returncode, out, err)


@pytest.fixture
def spawn_cli(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """Start ``mlperf-pilot ARGS`` as a real process (stdin closed, stdout/stderr piped)
    in tmp_path; every process still alive at the end is killed with its group."""
    started: list[subprocess.Popen[str]] = []

    def spawn(*argv: str, env: dict[str, str] | None = None) -> Spawned:
        full_env = {**os.environ, **(env or {})}
        process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), *[str(a) for a in argv]], cwd=tmp_path, env=full_env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        started.append(process)
        return Spawned(process, tmp_path)

    yield spawn
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: how many fault cases ran and how many ended in a checked clean error."""
    ran = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
           if getattr(r, "when", "call") == "call" and "tests/faults/" in r.nodeid]
    if ran:
        terminalreporter.write_line(
            f"fault suite: {len(ran)} cases ran, {len(faultkit.CLEAN_ERRORS)} clean errors "
            "checked (cause + fix, exit code, no traceback)")

"""SIGINT and SIGTERM during a run: stop soon, say so, and leave a truthful record.

Nothing here is installed at import time; the handlers exist only while a run (or one
test process) is in progress, and the previous ones come back afterwards.

- The ``mlperf-pilot`` process (:func:`raising_on_signals`, set by the CLI around a
  run): SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.
- While a test process runs (:class:`ForwardToChild`, set by ``engine.launch.run_in_child``):
  the signal is forwarded to the child, which writes its record and exits; the parent
  waits for it (at most ``GRACE_S``, then kills it) and raises :class:`Interrupted`
  carrying that record. A second signal kills the child at once.
- The test process itself (``engine.child``) runs LoadGen in a thread so that its main
  thread can take the signal while LoadGen blocks, and marks its record.

The exit code is the shell's for a process stopped by the signal: 128 + its number
(130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 10.0  # how long a signalled test process may take to write its record


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal. ``record``: the test that was in flight (marked
    FAILED, ``interrupted`` = the signal's name); ``summary``: what the run had finished;
    ``partial``: where that test's partial results are; ``previous_kept``: the folder's
    previous results were left as they were."""

    def __init__(self, signum: int, record: Any = None) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.record = record
        self.summary: Any = None
        self.partial: Path | None = None
        self.previous_kept = False

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        """One line: what was stopped (as MlperfPilotError.message)."""
        record = self.record
        if record is None:
            return f"interrupted by {self.name}; no LoadGen test was running"
        return (f"interrupted by {self.name} during the {record.scenario} {record.mode} "
                f"test; its record is marked {record.status} (interrupted)")

    @property
    def hint(self) -> str:
        """One line: what is kept and what to do."""
        if self.partial is None:
            return "rerun the same command; the finished tests above are kept"
        if self.previous_kept:
            return (f"rerun the same command to redo it; the previous results are unchanged, "
                    f"this run's partial results are in {self.partial}")
        return f"rerun the same command to redo it; the partial results are in {self.partial}"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def raising_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted (main thread only; a no-op elsewhere)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_once(signum: int, frame: FrameType | None) -> None:
    """A handler for the test process: the first signal raises Interrupted, later ones
    are ignored so that writing the record cannot be interrupted."""
    for sig in (*HANDLED, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


class ForwardToChild:
    """While ``child`` runs: SIGINT/SIGTERM go on to it and are remembered
    (``received``); a child still alive ``grace_s`` later is killed (``killed``)."""

    def __init__(self, child: subprocess.Popen[Any], grace_s: float = GRACE_S) -> None:
        self.child = child
        self.grace_s = grace_s
        self.received: int | None = None
        self.killed = False
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ForwardToChild:
        if _in_main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._kill()  # asked twice: stop now
            return
        self.received = signum
        if self.child.poll() is None:
            try:
                self.child.send_signal(signum)
            except ProcessLookupError:
                return
            self._timer = threading.Timer(self.grace_s, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _kill(self) -> None:
        if self.child.poll() is None:
            self.killed = True
            with suppress(ProcessLookupError):
                self.child.kill()


__all__ = ["GRACE_S", "ForwardToChild", "Interrupted", "raise_once", "raising_on_signals",
           "signal_name"]

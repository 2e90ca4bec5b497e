"""How long-running library steps report progress without printing.

Library code receives a :class:`Progress` and calls ``task()`` to open a task, then
``advance``/``update`` on it. The CLI passes an implementation that draws rich
progress bars on stderr; tests and the Python API get :data:`NULL_PROGRESS`, which
does nothing. Calls must be cheap: hot paths (the SUT) never call them per sample,
a monitor thread polls counters instead. Open a task only where work happens (inside a
cache entry's build, not around the lookup), so a cached step shows nothing.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(
        self, *, completed: float | None = None, total: float | None = None,
        description: str | None = None,
    ) -> None: ...

    def __enter__(self) -> ProgressTask: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "") -> ProgressTask:
        """Open a task; ``total=None`` means the amount of work is not known."""
        ...

    def note(self, message: str) -> None:
        """A one-line status message (e.g. "using cached model ...")."""
        ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        return None

    def update(
        self, *, completed: float | None = None, total: float | None = None,
        description: str | None = None,
    ) -> None:
        return None

    def __enter__(self) -> _NullTask:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class NullProgress:
    """Progress that records nothing; the default for library calls."""

    def task(self, description: str, total: float | None = None, unit: str = "") -> _NullTask:
        return _NullTask()

    def note(self, message: str) -> None:
        return None


class RecordingProgress(NullProgress):
    """Keeps the notes it receives; useful to tests and to the JSON summary."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


NULL_PROGRESS = NullProgress()

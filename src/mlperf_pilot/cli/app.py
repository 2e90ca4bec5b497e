"""The command group, its consoles and state: what every command module shares."""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from mlperf_pilot import __version__
from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.config import cache_dir_for

# Tables keep their full width when the output is a file or a pipe (no wrapping at 80).
_PIPE_WIDTH = 200
# No console markup: messages carry paths, hints like "pip install 'mlperf-pilot[demo]'"
# and rule names in brackets, which markup would eat. Styles are set with Text.
stdout = Console(highlight=False, markup=False,
                 width=None if sys.stdout.isatty() else _PIPE_WIDTH)
stderr = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


class State:
    def __init__(self, cache_dir: Path | None, debug: bool) -> None:
        self.cache_dir = cache_dir
        self.debug = debug

    def cache(self) -> AssetCache:
        return AssetCache(cache_dir_for(None, self.cache_dir))


pass_state = click.make_pass_decorator(State)

_CACHE_DIR_HELP = "Asset cache folder (default: $MLPERF_PILOT_CACHE or the user cache dir)."
_DEBUG_HELP = "Show tracebacks for errors."


def _set_cache_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    state = ctx.find_object(State)
    if value is not None and state is not None:
        state.cache_dir = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    state = ctx.find_object(State)
    if value and state is not None:
        state.debug = True


def common_options(*, cache_dir: bool = True) -> Any:
    """--debug (and --cache-dir) after the subcommand too: ``mlperf-pilot run --debug``
    means the same as ``mlperf-pilot --debug run``; listed in the command's --help."""

    def apply(func: Any) -> Any:
        func = click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                            callback=_set_debug, help=_DEBUG_HELP)(func)
        if cache_dir:
            func = click.option("--cache-dir", type=click.Path(path_type=Path),
                                expose_value=False, is_eager=True, callback=_set_cache_dir,
                                help=_CACHE_DIR_HELP)(func)
        return func

    return apply


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlperf-pilot")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help=_CACHE_DIR_HELP + " Also accepted after the command.")
@click.option("--debug", is_flag=True, help=_DEBUG_HELP + " Also accepted after the command.")
@click.pass_context
def cli(ctx: click.Context, cache_dir: Path | None, debug: bool) -> None:
    """Run MLPerf Inference benchmarks end to end.

    With no arguments, `mlperf-pilot run` runs the built-in demo: EfficientNet-Lite0
    (real ImageNet weights) on packaged photos, Offline and SingleStream, accuracy and
    performance, through the official LoadGen.
    """
    ctx.obj = State(cache_dir, debug)


def _print_error(message: str, hint: str | None) -> None:
    stderr.print(Text.assemble(("error:", "red"), f" {message}"))
    if hint:
        stderr.print(Text.assemble(("hint:", "yellow"), f" {hint}"))


PROGRESS_INTERVAL_ENV = "MLPERF_PILOT_PROGRESS_INTERVAL_S"
PROGRESS_INTERVAL_S = 15.0  # non-terminals: a line per running task this often


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


class _PlainTask:
    def __init__(self, owner: _PlainProgress, description: str, total: float | None,
                 unit: str) -> None:
        self.owner, self.description, self.total, self.unit = owner, description, total, unit
        self.completed = 0.0
        self.started = time.monotonic()

    def advance(self, amount: float = 1) -> None:
        self.completed += amount

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description

    def __enter__(self) -> _PlainTask:
        self.started = time.monotonic()
        self.owner.opened(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.owner.closed(self, failed=exc_type is not None)

    def line(self) -> str:
        """What, how far, elapsed (and about how long is left, once it can be told)."""
        elapsed = time.monotonic() - self.started
        done = f"{self.completed:,.0f}"
        text = f"{self.description}: {done}"
        if self.total:
            share = min(self.completed / self.total, 1.0)
            text += f"/{self.total:,.0f} {self.unit} ({share:.0%})".rstrip()
        elif self.unit:
            text += f" {self.unit}"
        text += f", {_clock(elapsed)} elapsed"
        if self.total and 0 < self.completed < self.total:
            left = elapsed * (self.total - self.completed) / self.completed
            text += f", about {_clock(left)} left"
        return text


class _PlainProgress:
    """Progress for non-terminals (CI, logs, nohup): a line when a task starts, one per
    running task every ``interval_s`` (what, how far, elapsed), one when a counted task
    ends; notes on stderr. ``$MLPERF_PILOT_PROGRESS_INTERVAL_S`` sets the
    interval."""

    def __init__(self, interval_s: float | None = None) -> None:
        env = os.environ.get(PROGRESS_INTERVAL_ENV)
        self.interval_s = interval_s or (float(env) if env else PROGRESS_INTERVAL_S)
        self._open: list[_PlainTask] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        return _PlainTask(self, description, total, unit)

    def note(self, message: str) -> None:
        stderr.print(message)

    def run_note(self, message: str) -> None:
        stderr.print(f"note: {message}")

    def opened(self, task: _PlainTask) -> None:
        stderr.print(f"{task.description}: started")
        with self._lock:
            self._open.append(task)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._report, daemon=True,
                                                name="plain-progress")
                self._thread.start()

    def closed(self, task: _PlainTask, *, failed: bool) -> None:
        with self._lock:
            if task in self._open:
                self._open.remove(task)
            last = not self._open
        elapsed = _clock(time.monotonic() - task.started)
        if failed:
            stderr.print(f"{task.description}: stopped after {elapsed}")
        elif task.unit:
            stderr.print(f"{task.description}: done, {task.completed:,.0f} {task.unit} "
                         f"in {elapsed}")
        if last:
            self.close()

    def _report(self) -> None:
        while not self._wake.wait(self.interval_s):
            with self._lock:
                lines = [task.line() for task in self._open]
            for line in lines:
                stderr.print(line)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            if thread is not threading.current_thread():
                thread.join()


# the command line as given, for the records' provenance
_INVOCATION: list[str] = []

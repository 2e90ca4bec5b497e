"""The command group, its consoles and state: what every command module shares."""

from __future__ import annotations

import sys
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlperf-pilot")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Asset cache folder (default: $MLPERF_PILOT_CACHE or the user cache dir).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
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


class _PlainProgress:
    """Progress for non-terminals: a line per finished task, notes on stderr."""

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        from mlperf_pilot.progress import NullProgress

        return NullProgress().task(description, total, unit)

    def note(self, message: str) -> None:
        stderr.print(message)


# the command line as given, for the records' provenance
_INVOCATION: list[str] = []

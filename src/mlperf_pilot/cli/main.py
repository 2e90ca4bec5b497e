"""The ``mlperf-pilot`` command: the only code that prints or exits.

Errors from the library arrive as MlperfPilotError and leave as one line with the
cause, one with the fix, and the error's exit code (2 for usage/config errors, 1 for
failed runs and checks). ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click
from rich.text import Text

# importing the command modules registers their commands on the group
from mlperf_pilot.cli import cache_cmd, run_cmd, submission_cmd  # noqa: F401
from mlperf_pilot.cli.app import _INVOCATION, _print_error, cli, stderr
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, MlperfPilotError


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    _INVOCATION[:] = list(argv) if argv is not None else sys.argv[1:]
    debug = "--debug" in _INVOCATION
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C outside a run
            return _interrupted(exc.__cause__)
        stderr.print("aborted")
        return EXIT_FAILED
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        return exc.exit_code
    except MlperfPilotError as exc:
        if debug:
            traceback.print_exc()
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug: say so briefly, details with --debug
        if debug:
            traceback.print_exc()
        stderr.print(Text.assemble(("internal error:", "red"), f" {type(exc).__name__}: {exc}"))
        stderr.print(Text.assemble(("hint:", "yellow"),
                                   " rerun with --debug and report the traceback"))
        return EXIT_FAILED
    return EXIT_OK


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Ctrl-C (or SIGTERM) outside a run's LoadGen tests: 128 + the signal."""
    import signal as _signal

    from mlperf_pilot.interrupts import signal_name

    signum = int(getattr(exc, "signum", _signal.SIGINT))
    _print_error(f"interrupted by {signal_name(signum)}",
                 "nothing was being written; rerun the command")
    return 128 + signum


__all__ = ["EXIT_USAGE", "cli", "main"]

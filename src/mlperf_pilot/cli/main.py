"""The ``mlperf-pilot`` command: the only code that prints or exits.

Errors from the library arrive as MlperfPilotError and leave as one line with the
cause, one with the fix, and the error's exit code (2 for usage/config errors, 1 for
failed runs and checks). ``--debug`` shows the traceback as well. With ``--json`` the
error is also a JSON object on stdout: ``{"ok": false, "error": {"message", "hint",
"exit_code", "type"}}``, so a script reading stdout never gets nothing.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence

import click
from rich.text import Text

# importing the command modules registers their commands on the group
from mlperf_pilot.cli import (  # noqa: F401
    cache_cmd,
    cache_fetch_cmd,
    pipeline_cmd,
    report_cmd,
    results_cmd,
    run_cmd,
    serve_cmd,
    serverless_cmd,
    submission_cmd,
    sweep_cmd,
)
from mlperf_pilot.cli.app import _INVOCATION, _print_error, cli, stderr
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, MlperfPilotError


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    _INVOCATION[:] = list(argv) if argv is not None else sys.argv[1:]
    debug = "--debug" in _INVOCATION
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="mlperf-pilot",
                 standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C outside a run
            return _interrupted(exc.__cause__)
        stderr.print("aborted")
        return EXIT_FAILED
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        _json_error(exc.format_message(), _usage_hint(exc), exc.exit_code, exc)
        return exc.exit_code
    except MlperfPilotError as exc:
        if debug:
            traceback.print_exc()
        _print_error(exc.message, exc.hint)
        _json_error(exc.message, exc.hint, exc.exit_code, exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug: say so briefly, details with --debug
        if debug:
            traceback.print_exc()
        stderr.print(Text.assemble(("internal error:", "red"), f" {type(exc).__name__}: {exc}"))
        stderr.print(Text.assemble(("hint:", "yellow"),
                                   " rerun with --debug and report the traceback"))
        _json_error(f"internal error: {type(exc).__name__}: {exc}",
                    "rerun with --debug and report the traceback", EXIT_FAILED, exc)
        return EXIT_FAILED
    return EXIT_OK


def _usage_hint(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return None
    return f"see `{ctx.command_path} --help`"


def error_object(message: str, hint: str | None, exit_code: int, exc: BaseException
                 ) -> dict[str, object]:
    """What ``--json`` prints on stdout when a command fails before its own output."""
    return {"ok": False, "error": {"message": message, "hint": hint, "exit_code": exit_code,
                                   "type": type(exc).__name__}}


def _json_error(message: str, hint: str | None, exit_code: int, exc: BaseException) -> None:
    if "--json" in _INVOCATION:
        sys.stdout.write(json.dumps(error_object(message, hint, exit_code, exc), indent=2)
                         + "\n")


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Ctrl-C (or SIGTERM) outside a run's LoadGen tests: 128 + the signal."""
    import signal as _signal

    from mlperf_pilot.interrupts import signal_name

    signum = int(getattr(exc, "signum", _signal.SIGINT))
    message, hint = f"interrupted by {signal_name(signum)}", \
        "nothing was being written; rerun the command"
    _print_error(message, hint)
    _json_error(message, hint, 128 + signum, exc)
    return 128 + signum


__all__ = ["EXIT_USAGE", "cli", "main"]

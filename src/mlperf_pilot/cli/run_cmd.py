"""`run` and `compliance`: LoadGen tests from the command line."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.text import Text

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.cli.app import (
    _INVOCATION,
    State,
    _PlainProgress,
    _print_error,
    cli,
    common_options,
    pass_state,
    stderr,
    stdout,
)
from mlperf_pilot.config import cache_dir_for, load_config_file, parse_set_option
from mlperf_pilot.config.flags import Command, Flag, flags_for, flags_to_layer
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK
from mlperf_pilot.vocab import COMPLIANCE_TESTS, ComplianceStatus

_F = TypeVar("_F", bound=Callable[..., Any])

# ----------------------------------------------------------------------------------- run


def _table_options(command: Command) -> Callable[[_F], _F]:
    """The command's flags of the one flag table (config.flags), as click options."""

    def apply(func: _F) -> _F:
        # click lists options in the reverse order of application: apply the table backwards
        for flag in reversed(flags_for(command)):
            func = click.option(flag.name, flag.dest, **_click_settings(flag, command))(func)
        return func

    return apply


def _click_settings(flag: Flag, command: Command) -> dict[str, Any]:
    settings: dict[str, Any] = {"help": flag.help, "multiple": flag.multiple}
    if flag.metavar:
        settings["metavar"] = flag.metavar
    if flag.type == "flag":
        settings["is_flag"] = True
    elif flag.type == "choice":
        settings["type"] = click.Choice(list(flag.choices_for(command)))
    elif flag.type == "path":
        settings["type"] = click.Path(path_type=Path)
    elif flag.type == "int":
        settings["type"] = int
    elif flag.type == "float":
        settings["type"] = float
    return settings


def spec_layer_options(func: _F) -> _F:
    """--config and --set: the run settings' layers under the flags (every command that
    builds a RunSpec from `run`'s options takes them: run, cache fetch, pipeline render)."""
    func = click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
                        help="Any run setting, e.g. --set sut.batch_timeout_us=500 "
                        "(repeatable; wins over --config).")(func)
    return click.option("--config", "config_file", type=click.Path(path_type=Path),
                        help="YAML/JSON file of run settings (under --set and the "
                        "flags; default none).")(func)


def _layer_options(func: _F) -> _F:
    """--config, --set and --json: the options that are not one setting each."""
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print the summary as JSON on stdout (a failure: "
                        '{"ok": false, "error": {...}}).')(func)
    return spec_layer_options(func)


@cli.command()
@_table_options("run")
@_layer_options
@common_options()
@pass_state
def run(state: State, config_file: Path | None, set_items: Sequence[str], as_json: bool,
        **flags: Any) -> None:
    """Run a benchmark (no options: the built-in demo)."""
    _execute_run(state, config_file, set_items, as_json, flags)


def _execute_run(state: State, config_file: Path | None, set_items: Sequence[str],
                 as_json: bool, flags: dict[str, Any],
                 compliance_tests: Sequence[str] = ()) -> None:
    from mlperf_pilot.cli.render import RichProgress
    from mlperf_pilot.engine import Engine, plan_run, resolve_spec
    from mlperf_pilot.engine.events import ProgressObserver
    from mlperf_pilot.interrupts import Interrupted, raising_on_signals

    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(load_config_file(config_file))
    for item in set_items:
        layers.append(parse_set_option(item))
    layers.append(_flag_layer(flags, state, compliance_tests))
    spec = resolve_spec(layers)
    plan = plan_run(spec, layer=False)
    spec = plan.spec
    progress = RichProgress(stderr, enabled=not as_json and stderr.is_terminal)
    if not stderr.is_terminal or as_json:
        progress = _PlainProgress()  # type: ignore[assignment]
    interrupted: Interrupted | None = None
    try:
        stderr.print(Text.assemble(
            (plan.card.name, "bold"), f" on {plan.sut.label}: "
            f"{', '.join(s.value for s in spec.scenarios)} x {_header_modes(plan)} "
            f"({spec.execution_mode.value} run) -> {Path(spec.results_dir).resolve()}"
        ))
        command = shlex.join(["mlperf-pilot", *_INVOCATION])
        cache = AssetCache(cache_dir_for(spec, state.cache_dir))
        # SIGINT/SIGTERM: the test in flight is stopped and marked, exit 128 + signal
        with raising_on_signals():
            # notes are shown as they happen (not again in the summary)
            shown = ProgressObserver(progress, notes=progress.run_note)
            summary = Engine(plan, cache=cache, observer=shown, command=command).run()
    except Interrupted as exc:
        interrupted = exc
    finally:
        progress.close()
    if interrupted is not None:
        from mlperf_pilot.cli.main import error_object

        error = error_object(interrupted.message, interrupted.hint, interrupted.exit_code,
                             interrupted)
        if interrupted.summary is not None and (interrupted.summary.records
                                                or interrupted.summary.compliance):
            _print_summary(interrupted.summary, as_json, interrupted=interrupted.name,
                           error=error)
        elif as_json:  # nothing finished: the error object alone
            sys.stdout.write(json.dumps(error, indent=2) + "\n")
        left = _not_run(plan, interrupted.summary)
        if left and not as_json:
            stderr.print(f"not run: {', '.join(left)}")
        _print_error(interrupted.message, interrupted.hint)
        raise SystemExit(interrupted.exit_code)
    _print_summary(summary, as_json)
    raise SystemExit(EXIT_OK if summary.ok else EXIT_FAILED)


def _not_run(plan: Any, summary: Any) -> list[str]:
    """The planned tests an interrupted run did not finish: ``Server performance``, ..."""
    from mlperf_pilot.vocab import ExecutionMode, Mode

    spec = plan.spec
    modes = [Mode.PERFORMANCE] if spec.execution_mode is ExecutionMode.FIND else spec.modes
    tests = [str(m.value) for m in modes]
    if plan.compliance is not None:
        tests += list(plan.compliance.tests)

    def word(value: Any) -> str:
        return str(getattr(value, "value", value))

    done: set[tuple[str, str]] = set()
    if summary is not None:
        done = {(word(r.scenario), word(r.mode)) for r in summary.records
                if not getattr(r, "interrupted", None)}
        done |= {(word(c.scenario), word(c.test)) for c in summary.compliance}
    return [f"{s.value} {t}" for s in spec.scenarios for t in tests
            if (word(s), t) not in done]


def _header_modes(plan: Any) -> str:
    """What will really run per scenario: find runs only performance probes (no accuracy,
    no compliance); compliance tests are named."""
    from mlperf_pilot.vocab import ExecutionMode

    spec = plan.spec
    if spec.execution_mode is ExecutionMode.FIND:
        return "performance"
    parts = [mode.value for mode in spec.modes]
    if plan.compliance is not None and plan.compliance.tests:
        parts.append(f"compliance {', '.join(plan.compliance.tests)}")
    return ", ".join(parts) or "nothing"


@cli.command(help=f"""Run compliance tests ({", ".join(COMPLIANCE_TESTS)}) on existing results.

    The accuracy and performance runs of each scenario must be in --results-dir already
    (mlperf-pilot run ... --mode both).
    """)
@click.argument("tests", nargs=-1, required=True)
@_table_options("compliance")
@_layer_options
@common_options()
@pass_state
def compliance(state: State, tests: Sequence[str], config_file: Path | None,
               set_items: Sequence[str], as_json: bool, **flags: Any) -> None:
    _execute_run(state, config_file, [*set_items, "modes=[]"], as_json, flags,
                 compliance_tests=[t.upper() for t in tests])


def _flag_layer(flags: dict[str, Any], state: State,
                compliance_tests: Sequence[str] = ()) -> dict[str, Any]:
    """The highest layer: the flags given, the compliance command's tests, --cache-dir."""
    layer = flags_to_layer(flags)
    if compliance_tests:
        layer["compliance"] = True
        layer["compliance_tests"] = list(compliance_tests)
    if state.cache_dir is not None:
        layer["cache_dir"] = state.cache_dir
    return layer


def _print_summary(summary: Any, as_json: bool, interrupted: str | None = None,
                   error: dict[str, Any] | None = None) -> None:
    from mlperf_pilot.cli.render import (
        next_step,
        recorded_lines,
        results_table,
        submittable_line,
    )

    if as_json:
        payload = {
            "ok": summary.ok,
            "results_dir": str(summary.results_dir),
            "system": summary.system,
            "model_source": summary.model_source,
            "dataset_source": summary.dataset_source,
            "notes": summary.notes,
            "records": [r.model_dump(mode="json") for r in summary.records],
            "compliance": [c.model_dump(mode="json") for c in summary.compliance],
            "targets_file": str(summary.targets_file) if summary.targets_file else None,
            "run_id": summary.run_id,
            "store": str(summary.store) if summary.store else None,
            "test_ids": list(summary.test_ids),
        }
        if interrupted:
            payload["interrupted"] = interrupted  # the signal that stopped the run
        if error is not None:  # what stopped it, as a failed command's error object
            payload.update(error)
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    stderr.print(f"model: {summary.model_source}")
    stderr.print(f"dataset: {summary.dataset_source}")
    if summary.records:
        stdout.print(results_table(summary.records))
    if summary.compliance:
        from mlperf_pilot.cli.render import compliance_table

        stdout.print(compliance_table(summary.compliance))
    for record in summary.records:
        if record.reference_line:
            stdout.print(record.reference_line)
    for record in summary.records:
        for reason in record.reasons:
            stdout.print(Text(f"{record.scenario} {record.mode}: {reason}", style="red"))
    for record in summary.records:  # LoadGen's verdict and why it is not submittable
        line = submittable_line(record)
        if line:
            stdout.print(Text(line, style="yellow"))
    for check in summary.compliance:
        style = "yellow" if check.status is ComplianceStatus.INDICATIVE else "red"
        for reason in check.reasons:
            stdout.print(Text(f"{check.scenario} {check.test}: {reason}", style=style))
    stdout.print(f"Results written to {summary.results_dir / summary.system}")
    step = next_step(summary.records)
    if step:
        stdout.print(step)
    for line in recorded_lines(summary.run_id, summary.test_ids, summary.store):
        stdout.print(line, soft_wrap=True)  # ids and paths stay whole, to copy

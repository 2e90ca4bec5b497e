"""`run` and `compliance`: LoadGen tests from the command line."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.cli.app import (
    _INVOCATION,
    State,
    _PlainProgress,
    _print_error,
    cli,
    pass_state,
    stderr,
    stdout,
)
from mlperf_pilot.config import default_cache_dir, load_config_file, parse_set_option
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK

# ----------------------------------------------------------------------------------- run

_SCENARIO_HELP = "SingleStream, MultiStream, Server, Offline or all (repeat or comma-separate)."


@cli.command()
@click.option("--model", help="Catalog model name (`mlperf-pilot list models`).")
@click.option("--backend", help="Backend name (`mlperf-pilot list backends`).")
@click.option("--device", help="cpu, cuda (gpu is an alias of cuda).")
@click.option("--model-format", help="A format id of the model card, e.g. onnx-opset8.")
@click.option("--model-path", type=click.Path(path_type=Path), help="Use this model file.")
@click.option("--dataset", help="Catalog dataset name (default: the model card's).")
@click.option("--dataset-path", type=click.Path(path_type=Path),
              help="Folder of the dataset (ImageNet: images + val_map.txt).")
@click.option("--scenario", "scenarios", multiple=True, help=_SCENARIO_HELP)
@click.option("--mode", "modes", multiple=True, help="accuracy, performance or both.")
@click.option("--execution-mode", type=click.Choice(["test", "find", "valid"]),
              help="test: short runs (default); find: calibrate targets into the targets "
              "file; valid: mlperf.conf's official durations with those targets.")
@click.option("--targets-file", type=click.Path(path_type=Path),
              help="Calibration targets (default ./mlperf-pilot-targets.yaml).")
@click.option("--compliance", is_flag=True,
              help="Also run the compliance tests the round requires (TEST01, TEST04, ...).")
@click.option("--round", "round_", help="MLPerf round whose rules apply (default v6.1).")
@click.option("--count", type=int, help="Use only the first N samples of the dataset.")
@click.option("--duration-ms", type=int, help="LoadGen min_duration (ms).")
@click.option("--target-qps", type=float, help="Offline expected / Server target QPS.")
@click.option("--target-latency-ms", type=float,
              help="SingleStream/MultiStream expected latency, Server latency bound (ms).")
@click.option("--max-batch-size", type=int, help="Largest batch the SUT forms.")
@click.option("--threads", type=int, help="Backend intra-op threads (default: cores/workers).")
@click.option("--workers", type=int, help="SUT worker threads (default 1; Server: one per core).")
@click.option("--results-dir", type=click.Path(path_type=Path), help="Default ./results.")
@click.option("--system-name", help="Name of this system in the results tree.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="YAML/JSON file of run settings (lower precedence than flags).")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
              help="Any run setting, e.g. --set sut.batch_timeout_us=500.")
@click.option("--allow-unverified-download", is_flag=True,
              help="Download a model file no checksum can verify (plain http, or a "
              "server that does not say the length); or pin one: --set model_sha256=HEX.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_state
def run(state: State, config_file: Path | None, set_items: Sequence[str], as_json: bool,
        **flags: Any) -> None:
    """Run a benchmark (no options: the built-in demo)."""
    _execute_run(state, config_file, set_items, as_json, flags)


def _execute_run(state: State, config_file: Path | None, set_items: Sequence[str],
                 as_json: bool, flags: dict[str, Any]) -> None:
    from mlperf_pilot.cli.render import RichProgress
    from mlperf_pilot.interrupts import Interrupted, raising_on_signals
    from mlperf_pilot.runner import BenchmarkRunner, plan_run, resolve_spec

    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(load_config_file(config_file))
    for item in set_items:
        layers.append(parse_set_option(item))
    layers.append(_flag_layer(flags, state))
    spec = resolve_spec(layers)
    plan = plan_run(spec)
    progress = RichProgress(stderr, enabled=not as_json and stderr.is_terminal)
    if not stderr.is_terminal or as_json:
        progress = _PlainProgress()  # type: ignore[assignment]
    interrupted: Interrupted | None = None
    try:
        stderr.print(Text.assemble(
            (plan.card.name, "bold"), f" on {plan.backend_name}/{spec.sut.device.value}: "
            f"{', '.join(s.value for s in spec.scenarios)} x "
            f"{', '.join(m.value for m in spec.modes)} "
            f"({spec.execution_mode.value} run) -> {Path(spec.results_dir).resolve()}"
        ))
        command = shlex.join(["mlperf-pilot", *_INVOCATION])
        # SIGINT/SIGTERM: the test in flight is stopped and marked, exit 128 + signal
        with raising_on_signals():
            summary = BenchmarkRunner(plan, cache=_cache_for(spec, state), progress=progress,
                                      command=command).run()
    except Interrupted as exc:
        interrupted = exc
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    if interrupted is not None:
        if interrupted.summary is not None and (interrupted.summary.records
                                                or interrupted.summary.compliance):
            _print_summary(interrupted.summary, as_json, interrupted=interrupted.name)
        _print_error(interrupted.message, interrupted.hint)
        raise SystemExit(interrupted.exit_code)
    _print_summary(summary, as_json)
    raise SystemExit(EXIT_OK if summary.ok else EXIT_FAILED)


@cli.command()
@click.argument("tests", nargs=-1, required=True)
@click.option("--model", help="Catalog model name.")
@click.option("--backend", help="Backend name.")
@click.option("--device", help="cpu, cuda (gpu).")
@click.option("--model-format", help="A format id of the model card.")
@click.option("--model-path", type=click.Path(path_type=Path))
@click.option("--dataset-path", type=click.Path(path_type=Path))
@click.option("--scenario", "scenarios", multiple=True, help=_SCENARIO_HELP)
@click.option("--execution-mode", type=click.Choice(["test", "valid"]))
@click.option("--duration-ms", type=int)
@click.option("--max-batch-size", type=int)
@click.option("--results-dir", type=click.Path(path_type=Path))
@click.option("--system-name")
@click.option("--round", "round_", help="MLPerf round (default v6.1).")
@click.option("--config", "config_file", type=click.Path(path_type=Path))
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def compliance(state: State, tests: Sequence[str], config_file: Path | None,
               set_items: Sequence[str], as_json: bool, **flags: Any) -> None:
    """Run compliance tests (TEST01, TEST04, TEST05) on existing results.

    The accuracy and performance runs of each scenario must be in --results-dir already
    (mlperf-pilot run ... --mode both).
    """
    flags["compliance_tests"] = [t.upper() for t in tests]
    _execute_run(state, config_file, [*set_items, "modes=[]"], as_json, flags)


def _cache_for(spec: Any, state: State) -> AssetCache:
    return AssetCache(spec.cache_dir or state.cache_dir or default_cache_dir())


def _flag_layer(flags: dict[str, Any], state: State) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    direct = ("model", "backend", "device", "model_format", "model_path", "dataset",
              "dataset_path", "execution_mode", "count", "results_dir", "system_name",
              "targets_file")
    if flags.get("allow_unverified_download"):
        layer["allow_unverified_download"] = True
    for key in direct:
        if flags.get(key) is not None:
            layer[key] = flags[key]
    if flags.get("scenarios"):
        layer["scenarios"] = list(flags["scenarios"])
    if flags.get("modes"):
        layer["modes"] = list(flags["modes"])
    if flags.get("compliance"):
        layer["compliance"] = True
    if flags.get("round_"):
        layer["round"] = flags["round_"]
    if flags.get("compliance_tests"):
        layer["compliance"] = True
        layer["compliance_tests"] = list(flags["compliance_tests"])
    loadgen = {
        "min_duration_ms": flags.get("duration_ms"),
        "target_qps": flags.get("target_qps"),
        "target_latency_ms": flags.get("target_latency_ms"),
    }
    loadgen = {k: v for k, v in loadgen.items() if v is not None}
    if loadgen:
        layer["loadgen"] = loadgen
    sut = {"max_batch_size": flags.get("max_batch_size"), "threads": flags.get("threads"),
           "workers": flags.get("workers")}
    sut = {k: v for k, v in sut.items() if v is not None}
    if sut:
        layer["sut"] = sut
    if state.cache_dir is not None:
        layer["cache_dir"] = state.cache_dir
    return layer


def _print_summary(summary: Any, as_json: bool, interrupted: str | None = None) -> None:
    from mlperf_pilot.cli.render import results_table

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
        }
        if interrupted:
            payload["interrupted"] = interrupted  # the signal that stopped the run
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    stderr.print(f"model: {summary.model_source}")
    stderr.print(f"dataset: {summary.dataset_source}")
    for note in summary.notes:
        stderr.print(f"note: {note}")
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
    for check in summary.compliance:
        style = "yellow" if check.status == "INDICATIVE" else "red"
        for reason in check.reasons:
            stdout.print(Text(f"{check.scenario} {check.test}: {reason}", style=style))
    stdout.print(f"Results written to {summary.results_dir / summary.system}")

"""The ``mlperf-pilot`` command: the only code that prints or exits.

Errors from the library arrive as MlperfPilotError and leave as one line with the
cause, one with the fix, and the error's exit code (2 for usage/config errors, 1 for
failed runs and checks). ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import json
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from mlperf_pilot import __version__
from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.config import default_cache_dir, load_config_file, parse_set_option
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, MlperfPilotError

F = TypeVar("F", bound=Callable[..., Any])

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
        return AssetCache(self.cache_dir or default_cache_dir())


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
            (plan.card.name, "bold"), f" on {plan.backend_name}/{spec.device.value}: "
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


class _PlainProgress:
    """Progress for non-terminals: a line per finished task, notes on stderr."""

    def task(self, description: str, total: float | None = None, unit: str = "") -> Any:
        from mlperf_pilot.progress import NullProgress

        return NullProgress().task(description, total, unit)

    def note(self, message: str) -> None:
        stderr.print(message)


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


def _print_error(message: str, hint: str | None) -> None:
    stderr.print(Text.assemble(("error:", "red"), f" {message}"))
    if hint:
        stderr.print(Text.assemble(("hint:", "yellow"), f" {hint}"))


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


# --------------------------------------------------------------------------------- cache


@cli.group()
def cache() -> None:
    """See and manage cached models, datasets and preprocessed data."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def cache_list(state: State, as_json: bool) -> None:
    """List cache entries."""
    from mlperf_pilot.cli.render import human_size, simple_table

    store = state.cache()
    entries = store.entries()
    # sizes only (a listing must stay quick); a run also checks the sha256 of models
    damage = {e.path: e.damage(hashes=False) for e in entries}
    if as_json:
        sys.stdout.write(json.dumps([{
            "name": e.name, "kind": e.kind, "key": e.key, "path": str(e.target),
            "size_bytes": e.size_bytes, "source": e.source, "created": e.created,
            "external": bool(e.external), "intact": damage[e.path] is None,
            "damage": damage[e.path],
        } for e in entries], indent=2) + "\n")
        return
    rows = [(e.name, e.kind, human_size(e.size_bytes) if not e.external else "(yours)",
             e.source, str(e.target) + ("" if damage[e.path] is None else
                                        f"  [damaged: {damage[e.path]}; rebuilt on next "
                                        f"use, or `mlperf-pilot cache clear {e.name}`]"))
            for e in entries]
    stdout.print(simple_table(f"cache at {store.root}", ("Name", "Kind", "Size", "Source", "Path"),
                              rows))
    if not entries:
        stdout.print("(empty)")


@cache.command("path")
@click.argument("name", required=False)
@pass_state
def cache_path(state: State, name: str | None) -> None:
    """Print the cache root, or the path of entry NAME."""
    store = state.cache()
    if name is None:
        stdout.print(str(store.root))
        return
    found = [e for e in store.entries(name=name) if e.is_intact()]
    if not found:
        _fail_missing_entry(store, name)
    for entry in found:
        stdout.print(str(entry.target))


@cache.command("clear")
@click.argument("name", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def cache_clear(state: State, name: str | None, yes: bool) -> None:
    """Remove entry NAME, or everything (registrations only, never your own files)."""
    store = state.cache()
    if name is not None and not store.entries(name=name):
        _fail_missing_entry(store, name)
    if name is None and not yes:
        click.confirm(f"Remove every entry under {store.root}?", abort=True, err=True)
    removed = store.clear(name)
    stdout.print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")


@cache.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="Register a model even if its checksum differs.")
@pass_state
def cache_add(state: State, name: str, path: Path, no_verify: bool) -> None:
    """Register a model file or dataset folder you already have (no copy).

    NAME is a catalog model (resnet50, or resnet50:onnx-opset8 for another format) or a
    catalog dataset (imagenet, coco, ...).
    """
    from mlperf_pilot.assets.registration import register

    entry = register(state.cache(), name, path, verify=not no_verify)
    stdout.print(f"registered {entry.kind} {entry.name} -> {entry.target}")


def _fail_missing_entry(store: AssetCache, name: str) -> None:
    names = sorted({e.name for e in store.entries()})
    raise click.UsageError(
        f"no cache entry named {name!r}; entries: {', '.join(names) if names else '(none)'}"
    )


# ---------------------------------------------------------------------------------- list


@cli.command("list")
@click.argument("what", type=click.Choice(["models", "datasets", "backends"]))
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_command(state: State, what: str, as_json: bool) -> None:
    """Show the catalog, with what is cached and what is installed."""
    from mlperf_pilot.cli.inventory import backend_rows, dataset_rows, model_rows
    from mlperf_pilot.cli.render import simple_table

    store = state.cache()
    builders = {"models": model_rows, "datasets": dataset_rows, "backends": backend_rows}
    columns, rows = builders[what](store)
    if as_json:
        table = [dict(zip(columns, r, strict=True)) for r in rows]
        sys.stdout.write(json.dumps(table, indent=2) + "\n")
        return
    stdout.print(simple_table(what, columns, rows))


# -------------------------------------------------------------------------------- doctor


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
def doctor(state: State, as_json: bool) -> None:
    """Check this installation: LoadGen, every backend and the devices it sees, the
    cache and its free space, the demo's prerequisites; each problem with its fix."""
    from mlperf_pilot.cli.render import simple_table
    from mlperf_pilot.doctor import FAIL, diagnose

    findings = diagnose(state.cache().root)
    if as_json:
        sys.stdout.write(json.dumps([f.as_dict() for f in findings], indent=2) + "\n")
    else:
        rows = [(f.area, f.name, f.status.upper(), f.detail, f.fix) for f in findings]
        stdout.print(simple_table("mlperf-pilot doctor",
                                  ("Area", "Check", "Status", "Found", "Fix"), rows))
    failed = [f for f in findings if f.status == FAIL]
    if failed:
        if not as_json:
            stderr.print(f"{len(failed)} problem(s): "
                         + "; ".join(f"{f.name}: {f.fix}" for f in failed))
        raise SystemExit(EXIT_FAILED)


# --------------------------------------------------------------------------------- bench


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--model", "models", multiple=True,
              help="Models for the per-model benchmarks (default resnet50-synthetic and the "
              "demo model).")
@click.option("--quick", is_flag=True, help="The smoke version: seconds, not minutes.")
@click.option("--server-latency-ms", type=int,
              help="Server latency bound for the search (default: the model card's).")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the figures as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_state
def bench(state: State, names: Sequence[str], models: Sequence[str], quick: bool,
          server_latency_ms: int | None, out: Path | None, as_json: bool) -> None:
    """Measure the harness against the raw backend (benchmarks: offline, single,
    ceiling, server, preprocess, memory, scaling; default all but scaling)."""
    from mlperf_pilot.bench.report import render_markdown
    from mlperf_pilot.bench.suite import BENCHMARKS, MODELS, run_suite

    chosen = list(names) or [n for n in BENCHMARKS if n != "scaling"]
    results = run_suite(chosen, models=tuple(models) or MODELS, quick=quick,
                        cache=state.cache(), server_latency_ms=server_latency_ms,
                        progress=_PlainProgress())
    text = json.dumps(results, indent=2, default=str)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if as_json:
        sys.stdout.write(text + "\n")
    else:
        stdout.print(render_markdown(results))


# ---------------------------------------------------------------------------- system


@cli.command()
@click.option("--division", type=click.Choice(["closed", "open", "network"]), default="open",
              show_default=True)
@click.option("--submitter", default="", help="Submitting organization.")
@click.option("--system-name", default=None, help="system_name (default: the CPU model).")
@click.option("--system-type", type=click.Choice(["datacenter", "edge", "datacenter,edge"]),
              default="edge", show_default=True)
@click.option("--status", type=click.Choice(["available", "preview", "rdi"]),
              default="available", show_default=True)
@click.option("--overrides", type=click.Path(path_type=Path),
              help="YAML/JSON file whose fields win over detection.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the JSON here.")
@click.option("--check", "check_file", type=click.Path(path_type=Path),
              help="Check an existing system JSON instead of detecting.")
def system(division: str, submitter: str, system_name: str | None, system_type: str,
           status: str, overrides: Path | None, out: Path | None,
           check_file: Path | None) -> None:
    """Detect this machine and write the system description JSON (or --check one)."""
    from mlperf_pilot.submission.check import CheckOptions, system_findings
    from mlperf_pilot.submission.system import describe_system, load_overrides

    if check_file is not None:
        try:
            data = json.loads(check_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"{check_file} is not a readable JSON file: {exc}") from exc
        found = system_findings(data, division or data.get("division", ""),
                                submitter or data.get("submitter", ""), CheckOptions())
        for finding in found:
            stdout.print(f"{finding.severity.upper()} [{finding.rule}] {finding.message}"
                         f" -> {finding.fix}", markup=False)
        errors = sum(f.is_error for f in found)
        stdout.print(f"{check_file}: {errors} error(s), {len(found) - errors} warning(s)")
        raise SystemExit(EXIT_FAILED if errors else EXIT_OK)
    extra = load_overrides(overrides) if overrides else {}
    from mlperf_pilot.results.provenance import cpu_model

    data, still = describe_system(
        division=division, submitter=submitter,
        system_name=system_name or extra.get("system_name") or cpu_model(),
        system_type=system_type, status=status, overrides=extra)
    text = json.dumps(data, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
        stderr.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")
    if still:
        stderr.print(f"not detected, fill in --overrides: {', '.join(still)}")


# ------------------------------------------------------------------------- submission


@cli.group()
def submission() -> None:
    """Build, check and pack an MLPerf submission tree."""


_ROUND_OPTION = click.option("--round", "round_", default="v6.1", show_default=True,
                             help="Round whose layout and rules apply (v6.1, v6.0, v5.1, "
                             "v5.0, v4.1).")


@submission.command("generate")
@click.option("--division", type=click.Choice(["closed", "open"]), required=True)
@click.option("--submitter", required=True)
@_ROUND_OPTION
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("submission"),
              show_default=True)
@click.option("--system", "systems", multiple=True, help="Only these systems (repeat).")
@click.option("--system-type", type=click.Choice(["datacenter", "edge", "datacenter,edge"]),
              default="edge", show_default=True)
@click.option("--status", type=click.Choice(["available", "preview", "rdi"]),
              default="available", show_default=True)
@click.option("--system-overrides", type=click.Path(path_type=Path),
              help="YAML/JSON system fields that win over detection.")
@click.option("--measurements-overrides", type=click.Path(path_type=Path),
              help="YAML/JSON measurements.json fields.")
@click.option("--backup-dir", type=click.Path(path_type=Path),
              help="Where the untruncated accuracy logs go (default <out>_logs).")
@click.option("--force", is_flag=True, help="Replace an existing <out>/<division>/<submitter>.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the checker on the new tree.")
@click.option("--include-invalid", is_flag=True,
              help="Package results our records mark INVALID/FAILED or with failed "
              "samples, marked as such (the check then reports them).")
def submission_generate(division: str, submitter: str, round_: str, results_dir: Path,
                        out: Path, systems: Sequence[str], system_type: str, status: str,
                        system_overrides: Path | None, measurements_overrides: Path | None,
                        backup_dir: Path | None, force: bool, check: bool,
                        include_invalid: bool) -> None:
    """Build the submission tree from a results folder."""
    from mlperf_pilot.submission.generate import GenerateOptions, generate_submission

    report = generate_submission(GenerateOptions(
        results_dir=results_dir, out=out, division=division, submitter=submitter,
        round=round_, systems=tuple(systems), system_type=system_type, status=status,
        system_overrides=system_overrides, measurements_overrides=measurements_overrides,
        backup_dir=backup_dir, force=force, include_invalid=include_invalid))
    stdout.print(f"wrote {len(report.results)} result(s) to {report.root / division / submitter}"
                 f" ({report.truncated} accuracy log(s) truncated, originals in "
                 f"{report.backup_dir})")
    for marked in report.included_invalid:
        stderr.print(f"included, marked invalid: {marked}", markup=False)
    for system_id, fields in report.system_placeholders.items():
        if fields:
            stderr.print(f"systems/{system_id}.json: fill {', '.join(fields)} "
                         "(--system-overrides)")
    if check:
        _run_check(report.root, round_, submitter=submitter, csv=None, flags={})


@submission.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--submitter", help="Only this submitter.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="summary.csv path (default <DIRECTORY>/summary.csv).")
@click.option("--skip-compliance", is_flag=True)
@click.option("--submission-exceptions", is_flag=True,
              help="Tolerate 'uncommitted LoadGen' errors (and multiple-conf errors in "
              "compliance runs), as the official flag does.")
@click.option("--skip-meaningful-fields-emptiness-check", is_flag=True)
@click.option("--skip-empty-files-check", is_flag=True)
@click.option("--skip-dataset-size-check", is_flag=True)
@click.option("--skip-extra-accuracy-files-check", is_flag=True)
@click.option("--scenarios-to-skip", default="", help="Comma-separated scenarios.")
@click.option("--json", "as_json", is_flag=True)
def submission_check(directory: Path, round_: str, submitter: str | None,
                     csv_path: Path | None, as_json: bool, **flags: Any) -> None:
    """Check a submission tree as the official submission checker does."""
    _run_check(directory, round_, submitter=submitter, csv=csv_path, flags=flags,
               as_json=as_json)


def _run_check(directory: Path, round_: str, *, submitter: str | None, csv: Path | None,
               flags: dict[str, Any], as_json: bool = False) -> None:
    from mlperf_pilot.cli.render import findings_report
    from mlperf_pilot.submission.check import (
        CheckOptions,
        check_submission,
        summary_rows,
        write_summary_csv,
    )

    scenarios = tuple(s for s in str(flags.pop("scenarios_to_skip", "") or "").split(",") if s)
    options = CheckOptions(round=round_, submitter=submitter, scenarios_to_skip=scenarios,
                           **{k: bool(v) for k, v in flags.items()})
    if not Path(directory).is_dir():
        raise click.UsageError(f"{directory} is not a folder")
    report = check_submission(directory, options)
    csv_path = csv or Path(directory) / "summary.csv"
    write_summary_csv(report, csv_path)
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": report.ok, "round": report.round, "summary_csv": str(csv_path),
            "results": [{"result": v.key, "valid": v.valid, "metric": v.metric,
                         "benchmark": v.mlperf_model, "findings": [f.__dict__ for f in
                                                                   v.findings]}
                        for v in report.verdicts],
            "findings": [f.__dict__ for f in report.tree_findings],
            "summary_rows": len(summary_rows(report)),
        }, indent=2, default=str) + "\n")
    else:
        for line in findings_report(report):
            stdout.print(line)
        valid = len(report.valid_results)
        stdout.print(f"Results={valid}, NoResults={len(report.verdicts) - valid}, "
                     f"errors={len(report.errors)}, round {report.round}; summary: {csv_path}")
        stdout.print("SUMMARY: submission looks OK" if report.ok else
                     "SUMMARY: submission has errors", markup=False)
    if not report.ok:
        raise SystemExit(EXIT_FAILED)


@submission.command("pack")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--out", type=click.Path(path_type=Path), help="Default <DIRECTORY>.tar.gz")
def submission_pack(directory: Path, round_: str, out: Path | None) -> None:
    """Check the tree, then make the .tar.gz to upload (refused when the check fails)."""
    from mlperf_pilot.submission.check import CheckOptions, check_submission
    from mlperf_pilot.submission.package import pack

    report = check_submission(directory, CheckOptions(round=round_))
    if not report.ok:
        stderr.print(f"the check found {len(report.errors)} error(s); nothing packed "
                     f"(see `mlperf-pilot submission check {directory} --round {round_}`)")
        raise SystemExit(EXIT_FAILED)
    archive = pack(Path(directory), out)
    stdout.print(f"packed {archive} ({archive.stat().st_size} bytes, sha256 in "
                 f"{archive.name}.sha256)")


# ---------------------------------------------------------------------------- entry point


_INVOCATION: list[str] = []


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
        stderr.print(Text.assemble(("error:", "red"), f" {exc.message}"))
        if exc.hint:
            stderr.print(Text.assemble(("hint:", "yellow"), f" {exc.hint}"))
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

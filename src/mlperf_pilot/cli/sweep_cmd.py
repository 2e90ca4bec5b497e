"""`sweep`: a matrix of run settings, each point its own `mlperf-pilot run` job (plan,
run, status, cancel, resume). The work is in mlperf_pilot.sweep; this module prints."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from mlperf_pilot.cli.app import (
    State,
    _PlainProgress,
    cli,
    common_options,
    pass_state,
    stderr,
    stdout,
)
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK

_STYLES = {"done": "green", "invalid": "yellow", "failed": "red", "running": "cyan",
           "queued": "blue", "pending": "dim"}


@cli.group("sweep")
def sweep() -> None:
    """Sweeps: a matrix of run settings, each point one `mlperf-pilot run` job, run
    locally or on Slurm (plan, run, status, cancel, resume)."""


def _results_dir_option(func: Any) -> Any:
    func = click.option("--results-dir", type=click.Path(path_type=Path),
                        default=Path("results"), show_default=True,
                        help="The results folder the sweep was run with (its sweeps/ "
                        "folder holds the sweep's state).")(func)
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print the sweep's state as JSON on stdout.")(func)
    return common_options(cache_dir=False)(func)


@sweep.command("plan")
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the points as JSON.")
@common_options()
@pass_state
def sweep_plan(state: State, sweep_file: Path, as_json: bool) -> None:
    """Print the sweep's points (each validated as a run) and the command each equals."""
    from mlperf_pilot.sweep.grid import plan_sweep

    extra = [{"cache_dir": str(state.cache_dir)}] if state.cache_dir is not None else []
    plan = plan_sweep(sweep_file, extra_layers=extra)
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "count": len(plan.points), "points": [
            {"id": p.id, "values": p.values, "command": list(p.argv)} for p in plan.points]},
            indent=2, default=str) + "\n")
        return
    stdout.print(f"{len(plan.points)} point(s) in {sweep_file} "
                 f"(executor {plan.file.executor.kind}):")
    for point in plan.points:
        stdout.print(Text.assemble((point.id, "bold"), f"  {point.label or '(base)'}"))
        stdout.print(f"  {shlex.join(point.argv)}", soft_wrap=True)
    stdout.print("`sweep run` adds each point's own --results-dir, the sweep's --store and "
                 "its asset cache", style="dim")


@sweep.command("run")
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--executor", "kind", default=None, metavar="NAME",
              help="Where the jobs run: local (one after another here), slurm or ray "
              "(a local Ray instance) (default: the sweep file's executor.kind, else "
              "local).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, metavar="N",
              help="Points running at once (default 1; Slurm: the array's %N; Ray: its "
              "CPUs, one per task).")
@click.option("--partition", default=None, metavar="P", help="Slurm partition.")
@click.option("--time-limit", default=None, metavar="TIME",
              help="Slurm time limit per job: M, M:S, H:M:S or D-H:M:S (default 60 min).")
@click.option("--exclusive", is_flag=True, default=None,
              help="One whole node per job (Slurm --exclusive), as submitters need.")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, metavar="N",
              help="GPUs per job (Slurm --gpus-per-node).")
@click.option("--wait", is_flag=True,
              help="Slurm: wait until every job ended and print their states.")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep's state as JSON.")
@common_options()
@pass_state
def sweep_run(state: State, sweep_file: Path, kind: str | None, max_parallel: int | None,
              partition: str | None, time_limit: str | None, exclusive: bool | None,
              gpus_per_job: int | None, wait: bool, as_json: bool) -> None:
    """Run every point of the sweep file as its own job."""
    from mlperf_pilot.cli.render import RichProgress
    from mlperf_pilot.sweep.launch import start_sweep, wait_sweep

    progress: Any = RichProgress(stderr, enabled=stderr.is_terminal and not as_json)
    if not stderr.is_terminal or as_json:
        progress = _PlainProgress()
    overrides = {"kind": kind, "max_parallel": max_parallel, "partition": partition,
                 "time_limit": time_limit, "exclusive": exclusive,
                 "gpus_per_job": gpus_per_job}

    def prepared(lines: list[str]) -> None:
        for line in lines:
            stderr.print(f"prepared once for the sweep: {line}")

    try:
        swept = start_sweep(sweep_file, overrides=overrides, cache_dir=state.cache_dir,
                            progress=progress, prepared=prepared)
    finally:
        progress.close()
    stderr.print(f"sweep {swept.sweep_id}: {len(swept.points)} point(s) on "
                 f"{swept.executor.kind} -> {swept.folder}")
    if wait and not swept.settled:
        swept = wait_sweep(swept, on_change=lambda s: stderr.print(_counts_line(s)))
    _show(swept, as_json)
    if swept.settled:
        raise SystemExit(EXIT_OK if all(p.status == "done" for p in swept.points)
                         else EXIT_FAILED)
    stderr.print(f"follow it with `mlperf-pilot sweep status {swept.sweep_id}`")


@sweep.command("status")
@click.argument("sweep_id")
@_results_dir_option
def sweep_status(sweep_id: str, results_dir: Path, as_json: bool) -> None:
    """Each point's status (done, invalid, running, queued, failed) from the scheduler,
    the point's files and the results store."""
    from mlperf_pilot.sweep.launch import make_executor
    from mlperf_pilot.sweep.state import load_state, refresh

    swept = load_state(sweep_id, results_dir)
    _show(refresh(swept, make_executor(swept)), as_json)


@sweep.command("cancel")
@click.argument("sweep_id")
@_results_dir_option
def sweep_cancel(sweep_id: str, results_dir: Path, as_json: bool) -> None:
    """Cancel the sweep's queued and running jobs (Slurm: scancel)."""
    from mlperf_pilot.sweep.launch import cancel_sweep
    from mlperf_pilot.sweep.state import load_state

    swept, cancelled = cancel_sweep(load_state(sweep_id, results_dir))
    stderr.print(f"cancelled {len(cancelled)} job(s)"
                 + (f": {', '.join(cancelled)}" if cancelled else " (none in flight)"))
    _show(swept, as_json)


@sweep.command("resume")
@click.argument("sweep_id")
@click.option("--wait", is_flag=True, help="Slurm: wait until the rerun jobs ended.")
@_results_dir_option
def sweep_resume(sweep_id: str, results_dir: Path, as_json: bool, wait: bool) -> None:
    """Rerun only the points that failed or never ran (a finished point never runs
    twice)."""
    from mlperf_pilot.sweep.launch import resume_sweep, wait_sweep
    from mlperf_pilot.sweep.state import load_state

    swept, rerun = resume_sweep(load_state(sweep_id, results_dir))
    stderr.print(f"resumed {swept.sweep_id}: "
                 + (f"rerunning {', '.join(rerun)}" if rerun else
                    "nothing to rerun (every point finished or is in flight)"))
    if wait and not swept.settled:
        swept = wait_sweep(swept, on_change=lambda s: stderr.print(_counts_line(s)))
    _show(swept, as_json)
    if rerun and swept.settled and any(p.status != "done" for p in swept.points):
        raise SystemExit(EXIT_FAILED)


def _job(job_id: str | None) -> str:
    """A job's id as the scheduler spells it (a local job: its executor's name)."""
    return "" if job_id is None else job_id.split(":", 1)[0] if ":" in job_id else job_id


def _counts_line(swept: Any) -> str:
    counts = swept.counts()
    return f"{swept.sweep_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _show(swept: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, **swept.model_dump(mode="json")}, indent=2)
                         + "\n")
        return
    table = Table(title=f"sweep {swept.sweep_id} ({swept.executor.kind})",
                  title_justify="left")
    for column in ("point", "settings", "status", "attempts", "job", "tests", "reason / log"):
        table.add_column(column, overflow="fold")
    for point in swept.points:
        why = point.reason or ""
        if point.status == "failed" and point.log and point.log not in why:
            why += f" (job log: {point.log})"
        table.add_row(point.id, point.label or "(base)",
                      Text(point.status, style=_STYLES.get(point.status, "")),
                      str(point.attempts), _job(point.job_id), str(len(point.test_ids)), why)
    stdout.print(table)
    stdout.print(_counts_line(swept))

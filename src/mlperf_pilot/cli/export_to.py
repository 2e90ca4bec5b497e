"""`results export --to mlflow|wandb`: the options of the experiment-tracker path and
what it prints. The exporters are report/exporters/ (a registry: ``mlflow``, ``wandb``,
and those of other packages); this module only maps the options and renders the
summary, so `results export` (cli/results_cmd.py) stays one command for files and
trackers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click


def tracker_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--to, --tracking-uri, --experiment, --wandb-dir, --wandb-project."""
    options = (
        click.option("--to", "to", metavar="TRACKER", default=None,
                     help="Log the tests to an experiment tracker instead of writing a "
                     "file: mlflow (a tracking server) or wandb (runs written offline)."),
        click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", metavar="URI",
                     help="--to mlflow: the tracking server (default $MLFLOW_TRACKING_URI); "
                     "credentials only through MLFLOW_TRACKING_TOKEN or "
                     "MLFLOW_TRACKING_USERNAME/_PASSWORD."),
        click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", metavar="NAME",
                     help="--to mlflow: the experiment (created if absent; default "
                     "$MLFLOW_EXPERIMENT_NAME, else mlperf-pilot)."),
        click.option("--wandb-dir", type=click.Path(path_type=Path, file_okay=False),
                     envvar="WANDB_DIR", metavar="DIR",
                     help="--to wandb: where the offline runs go (DIR/wandb/offline-run-*; "
                     "default $WANDB_DIR)."),
        click.option("--wandb-project", metavar="NAME", default=None,
                     help="--to wandb: the W&B project the runs belong to when synced "
                     "(default mlperf-pilot)."),
    )
    for option in reversed(options):
        func = option(func)
    return func


def exporter_options(to: str, *, tracking_uri: str | None, experiment: str | None,
                     wandb_dir: Path | None, wandb_project: str | None) -> dict[str, Any]:
    """The built-in exporters' constructor options from the flags (UsageError when one
    they need is missing; the other tracker's flags are ignored)."""
    if to == "mlflow":
        if not tracking_uri:
            raise click.UsageError("--to mlflow needs --tracking-uri URI (or "
                                   "$MLFLOW_TRACKING_URI)")
        return {"tracking_uri": tracking_uri, "experiment": experiment}
    if to == "wandb":
        if wandb_dir is None:
            raise click.UsageError("--to wandb needs --wandb-dir DIR (or $WANDB_DIR)")
        return {"directory": wandb_dir, "project": wandb_project}
    return {}  # another package's exporter: no options of ours


def export_to_tracker(tests: Sequence[Any], to: str, options: dict[str, Any]) -> None:
    """Export ``tests`` with the exporter ``to`` and print what it did."""
    from mlperf_pilot.cli.app import stderr, stdout
    from mlperf_pilot.report.exporters import make_exporter

    exporter = make_exporter(to, **options)
    if not tests:
        stderr.print("no stored test matches: nothing exported")
        return
    summary = exporter.export(tests)
    width = max(len(test.test_id) for test in summary.tests)
    for test in summary.tests:
        state = "already there" if test.skipped else "exported"
        stdout.print(f"{test.test_id:<{width}}  {state:<13}  {test.ref}", soft_wrap=True)
    skipped = len(summary.skipped)
    again = f"; {skipped} already there, not duplicated" if skipped else ""
    stderr.print(f"exported {len(summary.exported)} test(s) to {summary.destination}{again}")
    for note in summary.notes:
        stderr.print(note)


__all__ = ["export_to_tracker", "exporter_options", "tracker_options"]

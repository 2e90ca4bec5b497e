"""`results`: the results store's commands.

Every LoadGen test a run makes is recorded in the store (results.store) when it ends;
these commands read and maintain it. ``import`` and ``prune`` are defined in the section
"adopting and pruning" below; ``list``/``show``/``compare``/``export`` in their own
section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlperf_pilot.cli.app import cli, common_options
from mlperf_pilot.cli.export_to import export_to_tracker, exporter_options, tracker_options
from mlperf_pilot.cli.filters import TestFilter, filter_options
from mlperf_pilot.results.store import KINDS


@cli.group("results")
def results() -> None:
    """The results store: every test every run made (list, show, compare, export,
    import, prune)."""


def store_options(func: Any) -> Any:
    """--store and --results-dir: which store a command opens (shared by the commands
    of this group and by `report`); pass both to :func:`open_from_options`."""
    func = click.option("--results-dir", type=click.Path(path_type=Path), default=None,
                        help="Results folder whose results.sqlite is the store (default "
                        "./results).")(func)
    func = click.option("--store", "store", type=click.Path(path_type=Path), default=None,
                        help="The results store file (default: $MLPERF_PILOT_STORE, else "
                        "<results-dir>/results.sqlite).")(func)
    return common_options(cache_dir=False)(func)


def open_from_options(store: Path | None, results_dir: Path | None) -> Any:
    """The store the options name (results.store.open_store): StoreError when unusable."""
    from mlperf_pilot.results.store import open_store

    return open_store(store, results_dir=results_dir)


# --- reading (list, show, compare, export) ------------------------------------------
# the data comes from report.tables / report.compare / report.export (pure functions of
# the stored tests); cli/results_render.py draws it; the filters are cli/filters.py's


def open_for_reading(store: Path | None, results_dir: Path | None) -> Any:
    """The store the options name; a StoreError when there is none (reading creates
    no store)."""
    from mlperf_pilot.errors import StoreError
    from mlperf_pilot.results.store import STORE_ENV, store_path

    where = store_path(store, results_dir=results_dir)
    if not where.is_file():
        raise StoreError(f"no results store at {where}",
                         hint="run `mlperf-pilot run` first (every test is recorded), or "
                              f"point --store FILE (or ${STORE_ENV}) at a store")
    return open_from_options(where, None)


def _write_json(document: Any) -> None:
    import json
    import sys

    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@results.command("list")
@filter_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the tests as one JSON document.")
@store_options
def results_list(filters: TestFilter, as_json: bool, store: Path | None,
                 results_dir: Path | None) -> None:
    """List the stored tests, oldest first (filters: every one given must match)."""
    from mlperf_pilot.cli.app import stdout
    from mlperf_pilot.cli.results_render import list_table
    from mlperf_pilot.report.tables import list_rows

    with open_for_reading(store, results_dir) as opened:
        rows = list_rows(filters.select(opened))
        where = opened.path
    if as_json:
        _write_json({"store": str(where), "filters": filters.to_json(),
                     "tests": [row.to_json() for row in rows]})
        return
    if not rows:
        what = f" matching {filters.describe()}" if filters.describe() else ""
        stdout.print(f"no tests{what} in {where}")
        return
    stdout.print(list_table(rows, f"results store {where}"))
    stdout.print(f"{len(rows)} test(s); details: mlperf-pilot results show TEST, "
                 "side by side: mlperf-pilot results compare TEST TEST ...")


@results.command("show")
@click.argument("test_id", metavar="TEST_ID")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole stored test (record, settings, provenance) as JSON.")
@store_options
def results_show(test_id: str, as_json: bool, store: Path | None,
                 results_dir: Path | None) -> None:
    """Show one stored test: verdict and reasons, metric, latency percentiles,
    accuracy, settings, provenance, its logs (TEST_ID: the id or a unique prefix)."""
    from mlperf_pilot.cli.app import stdout
    from mlperf_pilot.cli.results_render import view_tables
    from mlperf_pilot.report.tables import show_view, stored_json

    with open_for_reading(store, results_dir) as opened:
        test = opened.get(test_id)
    if as_json:
        _write_json(stored_json(test))
        return
    view = show_view(test)
    for table in view_tables(view):
        stdout.print(table)
    for reason in view.reasons:
        stdout.print(f"reason: {reason}")


@results.command("compare")
@click.argument("test_ids", nargs=-1, required=True, metavar="TEST_A TEST_B ...")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when a test is flagged as a regression.")
@store_options
def results_compare(test_ids: tuple[str, ...], as_json: bool, fail_on_regression: bool,
                    store: Path | None, results_dir: Path | None) -> None:
    """Compare stored tests side by side, the first the baseline: metric, ratio,
    latency percentiles, accuracy, the settings and versions that differ; a test whose
    metric is worse than the first's beyond the run-to-run noise the store has seen for
    that configuration is flagged as a regression."""
    from mlperf_pilot.cli.app import stdout
    from mlperf_pilot.cli.results_render import compare_footer, compare_tables
    from mlperf_pilot.report.compare import compare

    if len(test_ids) < 2:
        raise click.UsageError("give two or more test ids (the first is the baseline)")
    with open_for_reading(store, results_dir) as opened:
        tests = [opened.get(test_id) for test_id in test_ids]
        # the noise of a configuration is measured over the store's VALID tests of it
        history = []
        for model, scenario in dict.fromkeys(
                (t.record.model, t.record.scenario.value) for t in tests):
            history += opened.select(model=model, scenario=scenario, status="VALID")
    comparison = compare(tests, history)
    if as_json:
        _write_json(comparison.to_json())
    else:
        for table in compare_tables(comparison):
            stdout.print(table)
        for line in compare_footer(comparison):
            stdout.print(line, soft_wrap=True)
    if fail_on_regression and comparison.regressions:
        raise SystemExit(1)


@results.command("export")
@click.argument("test_ids", nargs=-1, metavar="[TEST_ID ...]")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]),
              default="csv", show_default=True,
              help="csv/parquet: a flat row per test; json: each test whole.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Write to FILE (default: stdout; parquet needs a file).")
@tracker_options
@filter_options
@store_options
def results_export(test_ids: tuple[str, ...], fmt: str, out: Path | None,
                   to: str | None, tracking_uri: str | None, experiment: str | None,
                   wandb_dir: Path | None, wandb_project: str | None,
                   filters: TestFilter, store: Path | None,
                   results_dir: Path | None) -> None:
    """Export stored tests (the ones named, else those the filters take) as csv, json
    or parquet, or (--to) to MLflow or W&B, one tracker run per test."""
    import sys

    from mlperf_pilot.cli.app import stderr
    from mlperf_pilot.report.export import export_text, write_export

    if to is not None:  # an experiment tracker (cli/export_to.py), not a file
        if out is not None or click.get_current_context().get_parameter_source("fmt") \
                is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--to exports to a tracker: no --format/--out with it")
        options = exporter_options(to, tracking_uri=tracking_uri, experiment=experiment,
                                   wandb_dir=wandb_dir, wandb_project=wandb_project)
        with open_for_reading(store, results_dir) as opened:
            tests = filters.select(opened, test_ids)
        export_to_tracker(tests, to, options)
        return
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    with open_for_reading(store, results_dir) as opened:
        tests = filters.select(opened, test_ids)
    if out is None:
        sys.stdout.write(export_text(tests, fmt))
        return
    write_export(tests, fmt, out)
    stderr.print(f"exported {len(tests)} test(s) to {out} ({fmt})")


# --- adopting and pruning (import, prune) -------------------------------------------


@results.command("import")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False),
                metavar="DIR")
@click.option("--dry-run", is_flag=True, help="Say what would be imported; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
@store_options
def results_import(folder: Path, dry_run: bool, as_json: bool, store: Path | None,
                   results_dir: Path | None) -> None:
    """Adopt the LoadGen tests under DIR: a results folder of ours, or a submission
    tree or logs made by another tool (the logs stay where they are)."""
    from mlperf_pilot.cli.app import stdout
    from mlperf_pilot.results.importer import import_tree

    with open_from_options(store, results_dir) as opened:
        report = import_tree(opened, folder, dry_run=dry_run)
        where = opened.path
    if as_json:
        _write_json({"store": str(where), "dry_run": dry_run,
                     "added": [{"test_id": t, "log_dir": d} for t, d in report.added],
                     "known": report.known,
                     "unreadable": [{"folder": f, "why": w} for f, w in report.problems]})
        return
    verb = "would import" if dry_run else "imported"
    for test_id, logs in report.added:
        stdout.print(f"{verb} {test_id} ({logs})")
    for logs, why in report.problems:
        stdout.print(f"skipped {logs}: {why}")
    stdout.print(f"{verb} {len(report.added)} test(s) into {where}"
                 + (f", {len(report.known)} already there" if report.known else "")
                 + (f", {len(report.problems)} unreadable" if report.problems else ""))


@results.command("prune")
@click.option("--older-than", metavar="AGE|DATE",
              help="Tests started before this: an age (30d, 12h, 2w) or a date.")
@click.option("--keep-last", type=click.IntRange(min=0), metavar="N",
              help="Keep the N most recent tests of each system/model/scenario/mode.")
@click.option("--status", type=click.Choice(["VALID", "INVALID", "FAILED"],
                                            case_sensitive=False),
              help="Only tests of this status.")
@click.option("--kind", help=f"Only tests of this kind ({', '.join(KINDS)}).")
@click.option("--model", help="Only tests of this model.")
@click.option("--id", "ids", multiple=True, metavar="TEST_ID",
              help="Only these tests (repeatable; a unique prefix will do).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@store_options
def results_prune(older_than: str | None, keep_last: int | None, status: str | None,
                  kind: str | None, model: str | None, ids: tuple[str, ...],
                  dry_run: bool, as_json: bool, store: Path | None,
                  results_dir: Path | None) -> None:
    """Remove the tests matching every criterion given, and their run folders (the
    latest results folder and imported logs stay)."""
    from mlperf_pilot.cli.app import stdout
    from mlperf_pilot.results.prune import parse_age, prune

    cutoff = parse_age(older_than) if older_than else None
    with open_for_reading(store, results_dir) as opened:
        pruned = prune(opened, older_than=cutoff, keep_last=keep_last, status=status,
                       kind=kind, model=model, ids=ids, dry_run=dry_run)
        where = opened.path
    if as_json:
        _write_json({"store": str(where), "dry_run": dry_run,
                     "removed": [{"test_id": p.test_id, "started": p.started,
                                  "status": p.status, "run_folder": p.folder}
                                 for p in pruned]})
        return
    verb = "would remove" if dry_run else "removed"
    for p in pruned:
        folder = f" and {p.folder}" if p.folder else ""
        stdout.print(f"{verb} {p.test_id} ({p.status}, {p.started}){folder}")
    stdout.print(f"{verb} {len(pruned)} test(s) from {where}")

"""`report`: pictures and one self-contained HTML page of stored tests; `--serve` serves
it on 127.0.0.1.

The tests are the store's (`--store`/`--results-dir`, as `results`), chosen by id or by
the filters of `results list` (cli/filters.py); the page is report.build's. stdout gets
the path of index.html (and, with --serve, the URL); stderr what was drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlperf_pilot.cli.app import cli, stderr
from mlperf_pilot.cli.filters import TestFilter, filter_options
from mlperf_pilot.cli.results_cmd import open_for_reading, store_options
from mlperf_pilot.errors import ConfigError, StoreError

_DEFAULT_TITLE = "mlperf-pilot report"


@cli.command("report")
@click.argument("test_ids", nargs=-1, metavar="[TEST_ID ...]")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Folder of the report (default <results-dir>/report/, beside the store).")
@click.option("--title", default=_DEFAULT_TITLE, show_default=True,
              help="The page's title.")
@click.option("--serve", is_flag=True,
              help="Then serve the report on 127.0.0.1 until Ctrl-C (or SIGTERM).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for --serve (0: a free one; the URL is printed).")
@click.option("--sweep", "sweep_id", default=None, metavar="SWEEP_ID",
              help="Report a sweep (`sweep run`'s id, under --results-dir, default "
              "./results): its points' tests from its store, the metric across each "
              "swept key, the best point per scenario, the throughput/latency Pareto "
              "front (default --out: the sweep's folder/report).")
@filter_options
@store_options
def report(test_ids: tuple[str, ...], out: Path | None, title: str, serve: bool, port: int,
           sweep_id: str | None, filters: TestFilter, store: Path | None,
           results_dir: Path | None) -> None:
    """Write a report of stored tests (those named, else those the filters take, else
    all): latency distributions, throughput over time, comparisons, accuracy, a card
    per test; index.html opens offline. With --sweep, of a sweep's tests."""
    from mlperf_pilot.report.build import write_report

    if sweep_id is not None:
        if test_ids:
            raise ConfigError("give either test ids or --sweep, not both",
                              hint="--sweep takes the tests of the sweep's points")
        _report_sweep(sweep_id, out, title, filters, store, results_dir)
        if serve:
            _serve((out or _sweep_out(sweep_id, results_dir)), port)
        return
    with open_for_reading(store, results_dir) as opened:
        tests = filters.select(opened, test_ids)
        store_file = Path(opened.path)
    if not tests:
        described = filters.describe()
        raise StoreError(f"no stored test matches{' ' + described if described else ''} "
                         f"in {store_file}",
                         hint="`mlperf-pilot results list` shows the tests the store holds")
    folder = out if out is not None else (results_dir or store_file.parent) / "report"
    written = write_report(tests, folder, title=title)
    traced = sum(1 for source in written.latency_sources.values() if source == "trace")
    stderr.print(f"report of {len(tests)} test(s): {len(written.pictures)} picture(s); "
                 f"latency distributions from the trace for {traced} of "
                 f"{len(written.latency_sources)} performance test(s)")
    _out(str(written.index.resolve()))
    if serve:
        _serve(written.index.parent, port)


def _sweep_out(sweep_id: str, results_dir: Path | None) -> Path:
    from mlperf_pilot.sweep.state import load_state

    return load_state(sweep_id, results_dir or Path("results")).folder / "report"


def _report_sweep(sweep_id: str, out: Path | None, title: str, filters: TestFilter,
                  store: Path | None, results_dir: Path | None) -> None:
    """The sweep's tests (its points' runs and recorded failures) from its store."""
    from mlperf_pilot.report.build import write_report
    from mlperf_pilot.report.sweep import sweep_section
    from mlperf_pilot.sweep.state import load_state

    state = load_state(sweep_id, results_dir or Path("results"))
    ids = [i for p in state.points for i in
           [*p.test_ids, *([p.failure_recorded] if p.failure_recorded else [])]]
    if not ids:
        raise StoreError(f"sweep {state.sweep_id} has no test in its store yet",
                         hint="`mlperf-pilot sweep status SWEEP_ID` merges the jobs that "
                              "ended into the sweep's store")
    with open_for_reading(store or Path(state.store), None) as opened:
        tests = filters.select(opened, ids)
    if not tests:
        raise StoreError(f"no test of sweep {state.sweep_id} matches {filters.describe()}",
                         hint="drop a filter")
    folder = out if out is not None else state.folder / "report"
    shown = f"sweep {state.sweep_id}" if title == _DEFAULT_TITLE else title
    written = write_report(tests, folder, title=shown, sweep=sweep_section(state, tests))
    stderr.print(f"report of sweep {state.sweep_id}: {len(state.points)} point(s), "
                 f"{len(tests)} test(s), {len(written.pictures)} picture(s)")
    _out(str(written.index.resolve()))


def _serve(folder: Path, port: int) -> None:
    from mlperf_pilot.report.serve import serve_folder

    def ready(url: str) -> None:
        _out(url)
        stderr.print(f"serving the report at {url} (Ctrl-C stops)")

    try:
        signum = serve_folder(folder, port, ready)
    except OSError as exc:
        raise ConfigError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                          hint="choose another --port (0: a free one)") from exc
    stderr.print(f"stopped serving ({'signal ' + str(signum) if signum else 'done'})")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


__all__ = ["report"]

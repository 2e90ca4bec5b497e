"""`cache`, `list`, `doctor` and `bench`: the assets, the catalog and the machine."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.cli.app import (
    State,
    _PlainProgress,
    cli,
    pass_state,
    stderr,
    stdout,
)
from mlperf_pilot.errors import EXIT_FAILED

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
@click.argument("what", type=click.Choice(["models", "datasets", "backends", "suts"]))
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_command(state: State, what: str, as_json: bool) -> None:
    """Show the catalog, with what is cached and what is installed; the backends and
    SUT kinds with where each comes from (built-in or another package's entry point)."""
    from mlperf_pilot.cli.inventory import backend_rows, dataset_rows, model_rows, sut_rows
    from mlperf_pilot.cli.render import simple_table

    store = state.cache()
    builders = {"models": model_rows, "datasets": dataset_rows, "backends": backend_rows,
                "suts": sut_rows}
    columns, rows = builders[what](store)
    if as_json:
        table = [dict(zip(columns, r, strict=True)) for r in rows]
        sys.stdout.write(json.dumps(table, indent=2) + "\n")
        return
    stdout.print(simple_table("SUT kinds" if what == "suts" else what, columns, rows))


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

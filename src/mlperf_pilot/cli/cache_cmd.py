"""`cache`, `list`, `doctor` and `bench`: the assets, the catalog and the machine."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from mlperf_pilot.assets.cache import AssetCache, CacheEntry
from mlperf_pilot.cli.app import (
    State,
    _PlainProgress,
    cli,
    common_options,
    pass_state,
    stderr,
    stdout,
)
from mlperf_pilot.errors import EXIT_FAILED, ConfigError

# --------------------------------------------------------------------------------- cache


@cli.group()
def cache() -> None:
    """See and manage cached models, datasets and preprocessed data."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common_options()
@pass_state
def cache_list(state: State, as_json: bool) -> None:
    """List cache entries."""
    from mlperf_pilot.cli.render import human_size, simple_table

    store = state.cache()
    entries = store.entries()
    names = store.unique_names(entries)  # unique: no two rows read the same
    # sizes only (a listing must stay quick); a run also checks the sha256 of models
    damage = {e.path: e.damage(hashes=False) for e in entries}
    if as_json:
        sys.stdout.write(json.dumps([{
            "name": names[e.path], "card_name": e.name, "full_name": e.full_name,
            "kind": e.kind, "key": e.key, "path": str(e.target),
            "size_bytes": e.size_bytes, "source": e.source, "created": e.created,
            "external": bool(e.external), "intact": damage[e.path] is None,
            "damage": damage[e.path],
        } for e in entries], indent=2) + "\n")
        return
    rows = [(names[e.path], e.kind,
             human_size(e.size_bytes) if not e.external else "(yours)",
             e.source, str(e.target) + ("" if damage[e.path] is None else
                                        f"  [damaged: {damage[e.path]}; rebuilt on next "
                                        f"use, or `mlperf-pilot cache clear "
                                        f"{names[e.path]}`]"))
            for e in entries]
    stdout.print(simple_table(f"cache at {store.root}", ("Name", "Kind", "Size", "Source", "Path"),
                              rows))
    if not entries:
        stdout.print("(empty)")


@cache.command("path")
@click.argument("name", required=False)
@common_options()
@pass_state
def cache_path(state: State, name: str | None) -> None:
    """Print the cache root, or the path of entry NAME (a name of `cache list`); a
    name several entries share lists them with what tells them apart."""
    store = state.cache()
    if name is None:
        stdout.print(str(store.root))
        return
    found = [e for e in store.match(name) if e.is_intact()]
    if not found:
        _fail_missing_entry(store, name)
    stdout.print(str(_one_entry(store, name, found, "cache path").target))


@cache.command("clear")
@click.argument("name", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options()
@pass_state
def cache_clear(state: State, name: str | None, yes: bool) -> None:
    """Remove entry NAME, or everything (registrations only, never your own files)."""
    store = state.cache()
    if name is not None:
        found = store.match(name)
        if not found:
            _fail_missing_entry(store, name)
        entry = _one_entry(store, name, found, "cache clear")
        store.remove(entry)
        stdout.print(f"removed 1 entry ({entry.kind} {name}: {entry.target})")
        return
    if not yes:
        click.confirm(f"Remove every entry under {store.root}?", abort=True, err=True)
    removed = store.clear(None)
    stdout.print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")


@cache.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True,
              help="Register a model file whose checksum differs from the card's (or is "
              "not checked): it is marked unverified. Default: verify.")
@common_options()
@pass_state
def cache_add(state: State, name: str, path: Path, no_verify: bool) -> None:
    """Register a model file or dataset folder you already have (no copy).

    NAME is a catalog model (resnet50, or resnet50:onnx-opset8 for another format) or a
    catalog dataset (imagenet, coco, ...).
    """
    from mlperf_pilot.assets.registration import register

    entry = register(state.cache(), name, path, verify=not no_verify)
    stdout.print(f"registered {entry.kind} {entry.name} -> {entry.target}")


def _one_entry(store: AssetCache, name: str, found: list[CacheEntry], command: str
               ) -> CacheEntry:
    """The one entry ``name`` means; several: a ConfigError after listing each with
    its unique name and what tells it apart (on stderr: stdout stays one path)."""
    if len(found) == 1:
        return found[0]
    from mlperf_pilot.assets.cache import differences

    told = differences(found)
    stderr.print(f"{len(found)} cache entries are named {name}:")
    for entry in found:
        stderr.print(f"  {entry.full_name}  {entry.kind}, {entry.source}; "
                     f"differs by {told[entry.path]}: {entry.target}")
    raise ConfigError(f"{len(found)} cache entries are named {name!r}",
                      hint=f"name one: `mlperf-pilot {command} {found[0].full_name}`")


def _fail_missing_entry(store: AssetCache, name: str) -> None:
    names = sorted(store.unique_names().values())
    raise click.UsageError(
        f"no cache entry named {name!r}; entries: {', '.join(names) if names else '(none)'}"
    )


# ---------------------------------------------------------------------------------- list


@cli.command("list")
@click.argument("what", type=click.Choice(["models", "datasets", "backends", "suts",
                                            "flags"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common_options()
@pass_state
def list_command(state: State, what: str, as_json: bool) -> None:
    """Show the catalog, with what is cached and what is installed; the backends and
    SUT kinds with where each comes from (built-in or another package's entry point);
    the flags of `run` and `compliance` with the setting each sets (as the README's
    table, in Markdown)."""
    from mlperf_pilot.cli.inventory import backend_rows, dataset_rows, model_rows, sut_rows
    from mlperf_pilot.cli.render import simple_table

    if what == "flags":
        from mlperf_pilot.config.flags import RUN_FLAGS, flags_markdown

        if as_json:
            table = [{"flag": f.name, "setting": f.key, "meaning": f.doc or f.help,
                      "commands": list(f.commands)} for f in RUN_FLAGS]
            sys.stdout.write(json.dumps(table, indent=2) + "\n")
        else:
            sys.stdout.write(flags_markdown())
        return
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common_options()
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
              "demo model; with --quick the demo model only).")
@click.option("--quick", is_flag=True,
              help="The smoke version, about a minute: half-second runs, the demo model "
              "only, one Server probe on it (figures are sane, not precise).")
@click.option("--server-latency-ms", type=int,
              help="Server latency bound for the search (default: the model card's).")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the figures as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@common_options()
@pass_state
def bench(state: State, names: Sequence[str], models: Sequence[str], quick: bool,
          server_latency_ms: int | None, out: Path | None, as_json: bool) -> None:
    """Measure the harness against the raw backend (benchmarks: offline, single,
    ceiling, server, preprocess, memory, scaling; the network SUT: oip, oip-ceiling;
    default all but scaling, oip and oip-ceiling)."""
    from mlperf_pilot.bench.report import render_markdown
    from mlperf_pilot.bench.suite import DEFAULT_BENCHMARKS, run_suite

    chosen = list(names) or list(DEFAULT_BENCHMARKS)
    results = run_suite(chosen, models=tuple(models) or None, quick=quick,
                        cache=state.cache(), server_latency_ms=server_latency_ms,
                        progress=_PlainProgress())
    text = json.dumps(results, indent=2, default=str)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if as_json:
        sys.stdout.write(text + "\n")
    else:
        stdout.print(render_markdown(results))

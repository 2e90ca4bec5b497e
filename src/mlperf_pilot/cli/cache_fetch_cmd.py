"""`cache fetch`: download and verify a run's model and dataset, without running it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlperf_pilot.cli.app import State, _PlainProgress, common_options, pass_state, stdout
from mlperf_pilot.cli.cache_cmd import cache
from mlperf_pilot.cli.run_cmd import _table_options, spec_layer_options


@cache.command("fetch")
@_table_options("run")
@spec_layer_options
@common_options()
@pass_state
def cache_fetch(state: State, config_file: Path | None, set_items: Sequence[str],
                **flags: Any) -> None:
    """Fetch what `run` with the same options uses into the cache: the model file
    (verified against the card's checksum), the dataset and its preprocessed samples;
    what is cached already is kept. Loads no model (a pipeline's asset step)."""
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.cli.pipeline_cmd import spec_of
    from mlperf_pilot.config import cache_dir_for
    from mlperf_pilot.engine import plan_run
    from mlperf_pilot.engine.events import ProgressObserver
    from mlperf_pilot.engine.fetch import fetch_assets

    spec = spec_of(state, config_file, set_items, flags)
    plan = plan_run(spec, layer=False)
    cache_root = cache_dir_for(spec, state.cache_dir)
    progress = _PlainProgress()
    try:
        fetched = fetch_assets(plan, cache=AssetCache(cache_root),
                               observer=ProgressObserver(progress, notes=progress.run_note))
    finally:
        progress.close()
    verified = {True: "verified", False: "NOT verified", None: "no file"}[fetched.model_verified]
    stdout.print(f"model: {fetched.model} ({verified})", soft_wrap=True)
    stdout.print(f"dataset: {fetched.dataset}, {fetched.samples} samples preprocessed",
                 soft_wrap=True)
    for note in fetched.notes:
        stdout.print(f"note: {note}", soft_wrap=True)
    stdout.print(f"cache: {cache_root}", soft_wrap=True)

"""Starting, resuming and cancelling a sweep (what the ``sweep`` commands call; nothing
here prints).

``start_sweep``: plan and validate every point, prepare the assets once, write each
point's first attempt folder (``point.yaml``: the point's settings plus its own results
folder and results store, the sweep's asset cache, relative paths made absolute) and
submit them all to the executor. ``resume_sweep``: a new attempt for each point that failed or never
ran; a point that finished (done or invalid) or is still queued or running is never
submitted again. ``cancel_sweep``: cancel the jobs of the points in flight.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.config import cache_dir_for, deep_merge
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.sweep.executors import Executor, executor_class
from mlperf_pilot.sweep.grid import ExecutorSettings, SweepPlan, plan_sweep
from mlperf_pilot.sweep.job import POINT_FILE
from mlperf_pilot.sweep.state import (
    FAILED,
    FINISHED,
    IN_FLIGHT,
    JOB_STORE,
    PENDING,
    QUEUED,
    PointState,
    SweepState,
    new_sweep_id,
    refresh,
)

# settings that are paths: made absolute (against the folder `sweep run` ran in), since
# each job runs in its own attempt folder
_PATH_KEYS = (("dataset_path",), ("results_dir",), ("store",), ("cache_dir",),
              ("targets_file",), ("sut", "model_path"), ("sut", "token_file"))


def executor_settings(plan: SweepPlan, overrides: Mapping[str, Any]) -> ExecutorSettings:
    """The sweep file's executor settings with the flags given (None: not given) over."""
    given = {k: v for k, v in overrides.items() if v is not None and v is not False}
    try:
        return ExecutorSettings.model_validate({**plan.file.executor.model_dump(), **given})
    except ValueError as exc:
        from pydantic import ValidationError

        from mlperf_pilot.config import config_error_from

        if isinstance(exc, ValidationError):
            raise config_error_from(exc) from None
        raise ConfigError(str(exc), hint="see `mlperf-pilot sweep run --help`") from None


def make_executor(state: SweepState) -> Executor:
    return executor_class(state.executor.kind)(state.executor, state.folder, state.sweep_id)


def start_sweep(path: Path, *, overrides: Mapping[str, Any], cache_dir: Path | None,
                progress: Any, prepared: Callable[[list[str]], None] | None = None
                ) -> SweepState:
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.results.store import store_path
    from mlperf_pilot.sweep.assets import prepare_assets

    extra = [{"cache_dir": str(cache_dir)}] if cache_dir is not None else []
    plan = plan_sweep(path, extra_layers=extra)
    settings = executor_settings(plan, overrides)
    executor_class(settings.kind)  # an unknown executor is refused before anything runs
    first = plan.points[0].spec
    results_dir = Path(first.results_dir).expanduser().resolve()
    store = store_path(first.store, results_dir=results_dir).expanduser().resolve()
    cache = cache_dir_for(first, cache_dir).expanduser().resolve()
    lines = prepare_assets(plan.points, AssetCache(cache), progress)
    if prepared is not None:
        prepared(lines)
    sweep_id = new_sweep_id(plan.file.name)
    state = SweepState(
        sweep_id=sweep_id, name=plan.file.name,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(),
        sweep_file=str(path.resolve()), executor=settings, results_dir=str(results_dir),
        store=str(store), cache_dir=str(cache),
        points=[PointState(id=p.id, label=p.label, values=p.values, command=list(p.argv))
                for p in plan.points])
    settings_of = {p.id: _absolute(p.merged()) for p in plan.points}
    _submit(state, state.points, settings_of, make_executor(state))
    return state


def resume_sweep(state: SweepState) -> tuple[SweepState, list[str]]:
    """Rerun the points that failed or never ran; returns the state and their ids."""
    executor = make_executor(state)
    refresh(state, executor)
    rerun = [p for p in state.points if p.status not in FINISHED and p.status not in IN_FLIGHT]
    if not rerun:
        return state, []
    executor.resuming()
    settings_of = {}
    for point in rerun:
        settings_of[point.id] = _first_settings(state, point)
    _submit(state, rerun, settings_of, executor)
    return state, [p.id for p in rerun]


def cancel_sweep(state: SweepState) -> tuple[SweepState, list[str]]:
    executor = make_executor(state)
    refresh(state, executor)
    flying = [p for p in state.points if p.status in IN_FLIGHT and p.job_id]
    sent = set(executor.cancel([p.job_id for p in flying if p.job_id]))
    return state, [p.id for p in flying if p.job_id in sent]


def wait_sweep(state: SweepState, *, timeout_s: float | None = None, interval_s: float = 2.0,
               on_change: Callable[[SweepState], None] | None = None) -> SweepState:
    """Refresh until no point is queued or running (or ``timeout_s`` passed)."""
    executor = make_executor(state)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last: dict[str, int] = {}
    while True:
        refresh(state, executor)
        counts = state.counts()
        if counts != last and on_change is not None:
            on_change(state)
        last = counts
        if state.settled or (deadline is not None and time.monotonic() > deadline):
            return state
        time.sleep(interval_s)


def _submit(state: SweepState, points: Sequence[PointState], settings_of: Mapping[str, dict],
            executor: Executor) -> None:
    attempts = []
    for point in points:
        point.attempts += 1
        folder = point.attempt_dir(state.folder)
        folder.mkdir(parents=True, exist_ok=True)
        settings = deep_merge(settings_of[point.id], {
            "results_dir": str(folder / "results"), "store": str(folder / JOB_STORE),
            "cache_dir": state.cache_dir})
        (folder / POINT_FILE).write_text(yaml.safe_dump(settings, sort_keys=False),
                                         encoding="utf-8")
        point.status, point.reason, point.log = QUEUED, None, None
        point.job_id = executor.planned_job_id(folder)
        point.failure_recorded, point.test_ids = None, []
        attempts.append((point.id, folder))
    state.save()
    try:
        submissions = executor.submit(attempts)
    except BaseException:
        if executor.blocking:  # some points may have run: say what each did
            refresh(state, executor, final=True)
        else:
            for point in points:
                point.status, point.reason = PENDING, "not submitted (the submission failed)"
            state.save()
        raise
    by_id = {p.id: p for p in points}
    for sub in submissions:
        by_id[sub.point_id].job_id, by_id[sub.point_id].log = sub.job_id, sub.log
    state.save()
    refresh(state, executor, final=executor.blocking)


def _first_settings(state: SweepState, point: PointState) -> dict[str, Any]:
    """A point's settings as its first attempt ran them (without that attempt's folders)."""
    data = yaml.safe_load((point.attempt_dir(state.folder, 1) / POINT_FILE).read_text(
        encoding="utf-8")) or {}
    data.pop("results_dir", None)
    return data


def _absolute(settings: dict[str, Any]) -> dict[str, Any]:
    cwd = Path.cwd()
    for key in _PATH_KEYS:
        node: Any = settings
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(key[-1]) not in (None, ""):
            value = Path(str(node[key[-1]])).expanduser()
            node[key[-1]] = str(value if value.is_absolute() else cwd / value)
    return settings


__all__ = ["FAILED", "cancel_sweep", "executor_settings", "make_executor", "resume_sweep",
           "start_sweep", "wait_sweep"]

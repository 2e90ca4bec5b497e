"""The sweep's assets prepared once, before any job: each distinct model file and
preprocessed data set of the points, into the asset cache every job is given.

Each distinct asset set goes through :func:`~mlperf_pilot.engine.fetch.fetch_assets` (what
``mlperf-pilot cache fetch`` does: the first steps of a run's preparation, with the same
arguments), so each job finds its model and its preprocessed samples in the cache
(content-addressed and locked) and fetches or preprocesses nothing; N points of one model
and data set prepare them once, not N times. Loading and timing the model stays in each
job (it is part of that run's measurement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlperf_pilot.sweep.grid import Point


def prepare_assets(points: Sequence[Point], cache: Any, progress: Any) -> list[str]:
    """Prepare what the points need; returns one line per distinct asset set prepared."""
    from mlperf_pilot.engine import plan_run
    from mlperf_pilot.engine.events import ProgressObserver
    from mlperf_pilot.engine.fetch import fetch_assets

    observer = ProgressObserver(progress)
    done: dict[tuple[str, ...], str] = {}
    for point in points:
        plan = plan_run(point.spec, layer=False)
        spec = plan.spec
        local = spec.local
        key = (spec.model, plan.fmt.id, str(local.model_path if local else None),
               str(plan.sut.details.get("backend")), plan.dataset_card.name,
               str(spec.dataset_path), str(spec.count), str(plan.fmt.preprocess))
        if key in done:
            continue
        fetched = fetch_assets(plan, cache=cache, observer=observer)
        done[key] = (f"{plan.card.name} ({plan.fmt.id}): model {fetched.model}; "
                     f"{fetched.samples} samples of {plan.dataset_card.name} "
                     f"({plan.fmt.preprocess})")
    return list(done.values())


__all__ = ["prepare_assets"]

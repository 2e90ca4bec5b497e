"""The ``mlperf-pilot`` command lines a pipeline's steps run, derived from a RunSpec.

A rendered step runs what a user could type: :func:`run_argv` turns a RunSpec back into
``mlperf-pilot run`` flags through the one flag table (:data:`~mlperf_pilot.config.flags.
RUN_FLAGS`, the table ``run`` builds its options from); a setting no flag sets becomes
``--set key=value``. The settings that name places on this machine (results folder,
store, asset cache, targets file) are replaced by the pipeline's workspace paths, and
the scenario by the step's own (one scenario per LoadGen step).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlperf_pilot.config import RunSpec
from mlperf_pilot.config.flags import RUN_FLAGS, Flag

# settings the pipeline sets itself (workspace paths, the step's scenario)
_PLACED = frozenset({"scenarios", "results_dir", "store", "cache_dir", "targets_file"})
_BY_KEY: dict[str, Flag] = {flag.key: flag for flag in RUN_FLAGS if "run" in flag.commands}


@dataclass(frozen=True)
class StepPaths:
    """Where a step finds the assets and writes results (workspace paths or mounts)."""

    results_dir: str
    cache_dir: str


def run_argv(spec: RunSpec, *, backend: str | None, scenario: str, paths: StepPaths
             ) -> list[str]:
    """``mlperf-pilot run ...`` for one scenario of ``spec`` (a resolved RunSpec)."""
    argv = ["mlperf-pilot", "run", *spec_flags(spec, backend=backend), "--scenario", scenario]
    argv += ["--results-dir", paths.results_dir, "--cache-dir", paths.cache_dir]
    argv += ["--targets-file", f"{paths.results_dir}/mlperf-pilot-targets.yaml"]
    return argv


def fetch_argv(spec: RunSpec, *, backend: str | None, paths: StepPaths) -> list[str]:
    """``mlperf-pilot cache fetch ...``: the same model, dataset and SUT settings."""
    return ["mlperf-pilot", "cache", "fetch", *spec_flags(spec, backend=backend),
            "--cache-dir", paths.cache_dir]


def spec_flags(spec: RunSpec, *, backend: str | None) -> list[str]:
    """The flags (and ``--set`` items) that give ``spec`` again, in table order: every
    setting that differs from what ``mlperf-pilot run --model M`` alone resolves to (the
    card's run_defaults over the defaults); the model and backend always (a reader sees
    what runs without the card at hand)."""
    from mlperf_pilot.engine import resolve_spec

    baseline = _flatten(resolve_spec([{"model": spec.model, "sut": {"kind": spec.sut.kind}}])
                        .model_dump(mode="json"))
    given = {key: value for key, value in _flatten(spec.model_dump(mode="json")).items()
             if key not in baseline or baseline[key] != value}
    given["model"] = spec.model
    if spec.sut.kind != "local":
        given["sut.kind"] = spec.sut.kind
    if backend and "sut.backend" not in given and spec.sut.kind == "local":
        given["sut.backend"] = backend
    argv: list[str] = []
    for flag in RUN_FLAGS:
        if flag.key in _PLACED or flag.key not in given or "run" not in flag.commands:
            continue
        value = given[flag.key]
        if value is None or (flag.type == "flag" and not value):
            continue  # said by --set below: no flag unsets a value
        argv += _flag_args(flag, given.pop(flag.key))
    for key in sorted(given):
        if key.split(".")[0] in _PLACED:
            continue
        argv += ["--set", f"{key}={_yaml_scalar(given[key])}"]
    return argv


def _flag_args(flag: Flag, value: Any) -> list[str]:
    if flag.type == "flag":
        return [flag.name] if value else []
    if flag.multiple:
        items = value if isinstance(value, list) else [value]
        return [part for item in items for part in (flag.name, str(item))]
    return [flag.name, str(value)]


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        elif not isinstance(value, Mapping):
            flat[name] = value
    return flat


def _yaml_scalar(value: Any) -> str:
    """A value as ``--set`` reads it back (YAML): lists and bools as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)  # None -> null, True -> true, lists as [..]


def run_setting_keys() -> frozenset[str]:
    """The RunSpec keys the flag table covers (what a rendered run line may carry)."""
    return frozenset(_BY_KEY)


__all__ = ["StepPaths", "fetch_argv", "run_argv", "run_setting_keys", "spec_flags"]

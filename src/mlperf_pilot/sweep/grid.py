"""The sweep file: a base RunSpec, a matrix of settings, the executor's settings -> the
points of the sweep, each validated as a RunSpec and rendered as the ``mlperf-pilot run``
command it equals.

A sweep file (YAML)::

    name: demo-batch-threads          # optional: the sweep ids start with it
    config: base.yaml                 # optional: a --config file under `base`
    base:                             # run settings, the same keys as --config
      model: efficientnet-lite0-demo
      modes: [performance]
    matrix:                           # dotted keys (as --set spells them) -> values
      sut.max_batch_size: [1, 8]
      sut.threads: [1, 2]
      exclude:                        # drop the combinations matching every key given
        - {sut.max_batch_size: 8, sut.threads: 1}
      include:                        # as in CI matrices: extend the matching
        - {sut.max_batch_size: 4, sut.threads: 2}   # combinations, else add a point
    executor: {kind: slurm, partition: debug, time_limit: "20:00", exclusive: true}

The points are the cartesian product of the matrix (keys in file order), minus
``exclude``, plus ``include``; each one's layers are those of ``run`` (the config file,
``base``, the point's settings) resolved over the model card exactly as ``run`` resolves
them (:func:`~mlperf_pilot.engine.resolve_spec`), so a point that ``run`` would refuse is
refused here, before anything runs. No second parser: the keys are checked by the one
--set parser and the values by RunSpec.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlperf_pilot.config import (
    RunSpec,
    config_error_from,
    deep_merge,
    load_config_file,
    parse_set_option,
)
from mlperf_pilot.errors import ConfigError, MlperfPilotError

_SWEEP_HINT = "see the README's Sweeps section for the sweep file's keys"


class ExecutorSettings(BaseModel):
    """How the points run; the ``sweep run`` flags override these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "local"
    max_parallel: int = Field(default=1, ge=1)  # points running at once
    partition: str | None = None
    time_limit: str | int | None = None  # Slurm's spellings: M, M:S, H:M:S, D-H[:M[:S]]
    exclusive: bool = False  # one node per job (Slurm --exclusive)
    gpus_per_job: int = Field(default=0, ge=0)

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            time_limit_minutes(value)
        return value

    def minutes(self) -> int | None:
        return None if self.time_limit is None else time_limit_minutes(self.time_limit)


class SweepFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "sweep"
    config: Path | None = None
    base: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] = Field(default_factory=dict)
    executor: ExecutorSettings = ExecutorSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value) \
                or value.startswith("."):
            raise ValueError("must be letters, digits, '-', '_' or '.'")
        return value


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep: its settings (dotted key -> value), the layers it
    is run with, its validated spec, and the ``mlperf-pilot run`` arguments it equals."""

    index: int
    values: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    spec: RunSpec
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"p{self.index:03d}"

    @property
    def label(self) -> str:
        return ",".join(f"{key}={_scalar(value)}" for key, value in self.values.items())

    def merged(self) -> dict[str, Any]:
        """The point's settings as one mapping (the file a job runs with)."""
        merged: dict[str, Any] = {}
        for layer in self.layers:
            merged = deep_merge(merged, layer)
        return merged


@dataclass(frozen=True)
class SweepPlan:
    path: Path
    file: SweepFile
    points: tuple[Point, ...]


def load_sweep(path: Path) -> SweepFile:
    """Read and check a sweep file's shape (the points are checked by :func:`plan_sweep`)."""
    data = load_config_file(path)  # the same YAML reading (and errors) as --config
    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as exc:
        err = config_error_from(exc)
        raise ConfigError(f"sweep file {path}: {err.message}", hint=_SWEEP_HINT) from None
    if sweep.config is not None and not sweep.config.is_absolute():
        sweep = sweep.model_copy(update={"config": path.parent / sweep.config})
    return sweep


def plan_sweep(path: Path, *, extra_layers: Sequence[Mapping[str, Any]] = ()) -> SweepPlan:
    """Every point of the sweep file at ``path``, validated; ``extra_layers`` go over each
    point (``sweep run``'s --cache-dir, the per-point results folder)."""
    from mlperf_pilot.engine import resolve_spec

    sweep = load_sweep(path)
    base_layers: list[dict[str, Any]] = []
    if sweep.config is not None:
        base_layers.append(load_config_file(sweep.config))
    base_layers.append(dict(sweep.base))
    combos = expand_matrix(sweep.matrix, where=str(path))
    points = []
    for index, values in enumerate(combos):
        layers = (*base_layers, _nested(values), *(dict(x) for x in extra_layers))
        try:
            spec = resolve_spec(layers)
        except MlperfPilotError as exc:
            shown = ",".join(f"{k}={_scalar(v)}" for k, v in values.items()) or "(base)"
            raise type(exc)(f"sweep point p{index:03d} ({shown}): {exc.message}",
                            hint=exc.hint) from None
        points.append(Point(index, values, layers, spec, run_command(spec)))
    return SweepPlan(path, sweep, tuple(points))


def run_command(spec: RunSpec) -> tuple[str, ...]:
    """The ``mlperf-pilot run`` command a point equals, through the one RunSpec -> flags
    function (:func:`~mlperf_pilot.pipelines.commands.spec_flags`: the flag table, the
    settings that differ from the card's); the folders a sweep places itself (results,
    store, cache, targets file) are left out, the scenarios given."""
    from mlperf_pilot.pipelines.commands import spec_flags

    scenarios = [part for s in spec.scenarios for part in ("--scenario", s.value)]
    return ("mlperf-pilot", "run", *spec_flags(spec, backend=None), *scenarios)


def expand_matrix(matrix: Mapping[str, Any], *, where: str = "the sweep file"
                  ) -> list[dict[str, Any]]:
    """The matrix's combinations: the cartesian product (keys in order), minus those an
    ``exclude`` entry matches on all its keys, then each ``include`` entry added to every
    combination it matches on the product's keys it names (never overwriting one of
    them), or else added as a point of its own."""
    matrix = dict(matrix)
    include = _entries(matrix.pop("include", []), "include", where)
    exclude = _entries(matrix.pop("exclude", []), "exclude", where)
    for key, values in matrix.items():
        _check_key(key, where)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: matrix key {key} needs a list of values, "
                              f"got {values!r}", hint=f"e.g. {key}: [1, 2]")
    keys = list(matrix)
    combos = [dict(zip(keys, values, strict=True))
              for values in itertools.product(*matrix.values())] if keys else [{}]
    for entry in exclude:
        unknown = [k for k in entry if k not in matrix]
        if unknown:
            raise ConfigError(f"{where}: exclude names {unknown[0]}, which is not a "
                              "matrix key", hint=f"matrix keys: {', '.join(keys) or 'none'}")
        combos = [c for c in combos if not all(c.get(k) == v for k, v in entry.items())]
    originals = [dict(c) for c in combos]
    for entry in include:
        matched = False
        for combo, original in zip(combos[:len(originals)], originals, strict=True):
            if all(original[k] == v for k, v in entry.items() if k in matrix):
                combo.update({k: v for k, v in entry.items() if k not in matrix})
                matched = True
        if not matched:
            combos.append(dict(entry))
    if keys or include:
        combos = [c for c in combos if c]  # the empty base point only without a matrix
    if not combos:
        raise ConfigError(f"{where}: the matrix has no point left (exclude removed all)",
                          hint="remove an exclude entry or add values")
    unique: list[dict[str, Any]] = []
    for combo in combos:
        if combo not in unique:
            unique.append(combo)
    return unique


def time_limit_minutes(value: str | int) -> int:
    """Slurm's time spellings (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``,
    ``D-H:M:S``) -> whole minutes, rounded up."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("a time limit of at least 1 minute")
        return value
    text = str(value).strip()
    try:
        days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
        parts = [int(p) for p in clock.split(":")]
        day = int(days or 0)
        if "-" in text:  # D-H, D-H:M, D-H:M:S
            parts += [0] * (3 - len(parts))
            hours, minutes, seconds = parts
        elif len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"time limit {text!r} is not M, M:S, H:M:S or D-H:M:S") from None
    total = day * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    if total < 1 or min(day, hours, minutes, seconds) < 0:
        raise ValueError(f"time limit {text!r} must be at least 1 minute")
    return total


def _entries(value: Any, name: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(e, dict) and e for e in value):
        raise ConfigError(f"{where}: matrix {name} must be a list of mappings of settings",
                          hint=f"e.g. {name}: [{{sut.threads: 2}}]")
    for entry in value:
        for key in entry:
            _check_key(key, where)
    return [dict(e) for e in value]


def _check_key(key: str, where: str) -> None:
    try:
        parse_set_option(f"{key}=")  # the one check of a dotted key (--set's)
    except ConfigError as exc:
        raise ConfigError(f"{where}: matrix {exc.message}", hint=exc.hint) from None


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = layer
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return layer


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_scalar(v) for v in value) + "]"
    return str(value)


__all__ = ["ExecutorSettings", "Point", "SweepFile", "SweepPlan", "expand_matrix",
           "load_sweep", "plan_sweep", "time_limit_minutes"]

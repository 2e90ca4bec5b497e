"""Calibration: targets that make valid runs succeed the first time.

``--execution-mode find`` measures what this system sustains (Offline samples/s,
SingleStream/MultiStream latency, Server peak QPS) and writes it to a targets file the
user owns and can edit (YAML, one entry per system/model/scenario). ``valid`` runs use
mlperf.conf's official durations with those targets. When a valid run comes back
INVALID anyway, :func:`adjust` says which constraint failed and what target to use,
and the runner reruns once (``max_reruns``), keeping both runs' logs — never from a
run whose samples failed (:func:`not_rerunnable`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from mlperf_pilot.config import Scenario
from mlperf_pilot.errors import ConfigError, StoreError
from mlperf_pilot.loadgen.logs import LoadGenResult
from mlperf_pilot.storage import disk_full_error, is_disk_full, write_text_atomic

DEFAULT_TARGETS_FILE = Path("mlperf-pilot-targets.yaml")
HEADER = """\
# mlperf-pilot calibration targets: <system>: <model>: <scenario>: {target}.
# Written by `mlperf-pilot run --execution-mode find`, read by `--execution-mode valid`
# (explicit --target-qps / --target-latency-ms win). Yours to edit.
"""
# valid runs ask for a little less than was measured, so the run lasts its duration
OFFLINE_MARGIN = 0.9
SERVER_MARGIN = 0.95
LATENCY_MARGIN = 0.9
RERUN_STEP = 0.9
# Offline that ended too early: the measured rate, raised (short runs under-measure it)
OFFLINE_RERUN_RAISE = 1.25


class TargetsFile:
    """The targets file, read when first used (a test run never reads it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data: dict[str, Any] | None = None
        self._unsaved: list[str] = []

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def load(self) -> TargetsFile:
        """Read and check the file now (plan_run does, before any work)."""
        _ = self.data
        return self

    def _load(self) -> dict[str, Any]:
        fix = (f"fix {self.path} (a YAML mapping system: model: scenario: targets), or move "
               "it away and run --execution-mode find to write a new targets file")
        if self.path.is_dir():
            raise ConfigError(f"targets file {self.path} is a folder, not a file",
                              hint="give --targets-file a file name")
        if not self.path.exists():
            return {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"targets file {self.path} is not a text file (byte {exc.start} "
                              "is not UTF-8)", hint=fix) from None
        except OSError as exc:
            raise ConfigError(f"targets file {self.path} cannot be read: "
                              f"{exc.strerror or exc}", hint=fix) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"targets file {self.path} is not valid YAML{where}",
                              hint=fix) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"targets file {self.path} must hold a mapping, not "
                              f"{type(data).__name__}", hint=fix)
        _check_levels(self.path, data, ("models", "scenarios", "targets"), (), fix)
        return data

    def get(self, system: str, model: str, scenario: Scenario) -> dict[str, Any]:
        entry = ((self.data.get(system) or {}).get(model) or {}).get(scenario.value)
        return dict(entry) if isinstance(entry, dict) else {}

    def set(self, system: str, model: str, scenario: Scenario, values: dict[str, Any]) -> None:
        entry = {k: v for k, v in values.items() if v is not None}
        entry["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.data.setdefault(system, {}).setdefault(model, {})[scenario.value] = entry
        shown = ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)
        self._unsaved.append(f"{system} {model} {scenario.value}: {shown}")

    def save(self) -> None:
        """Write atomically (the old file stays whole until the new one is complete);
        when it cannot be written, the error carries what was measured."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, HEADER + yaml.safe_dump(self.data, sort_keys=True))
        except OSError as exc:
            measured = "; ".join(self._unsaved) or "nothing new"
            if is_disk_full(exc):
                raise disk_full_error(exc, where=str(self.path), kept=(
                    f"{self.path} as it was; not saved: {measured}")) from exc
            raise StoreError(
                f"targets file {self.path} cannot be written: {exc.strerror or exc}",
                hint=f"fix that and rerun, or add by hand what was measured: {measured}",
            ) from exc
        self._unsaved.clear()


def _check_levels(path: Path, data: dict[str, Any], levels: tuple[str, ...],
                  keys: tuple[str, ...], fix: str) -> None:
    """Every level down to the targets is a mapping (system: model: scenario: {...});
    an empty level (``None``) is allowed."""
    if not levels:
        return
    for key, value in data.items():
        where = (*keys, str(key))
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"targets file {path}: {'.'.join(where)} must be a mapping of "
                              f"{levels[0]}, not {type(value).__name__} {value!r}"[:300],
                              hint=fix)
        _check_levels(path, value, levels[1:], where, fix)


def _parsed(loadgen: LoadGenResult | Mapping[str, Any] | None) -> LoadGenResult | None:
    """The LoadGenResult of a record: as it is, None (no result: the run failed before
    LoadGen logged one), or a dict of one (records written before it was typed; an empty
    dict, ``record.loadgen or {}``, is None)."""
    if loadgen is None or isinstance(loadgen, LoadGenResult):
        return loadgen
    return LoadGenResult.model_validate(loadgen) if loadgen else None


def target_from_find(scenario: Scenario,
                     loadgen: LoadGenResult | Mapping[str, Any] | None) -> dict[str, Any]:
    """The target a find run supports, with the margin valid runs use ({} when the run
    measured nothing to go by)."""
    result = _parsed(loadgen)
    if result is None:
        return {}
    if scenario is Scenario.OFFLINE:
        value = result.samples_per_second
        return {"target_qps": round(value * OFFLINE_MARGIN, 3)} if value else {}
    if scenario is Scenario.SERVER:
        value = result.completed_samples_per_sec
        return {"target_qps": round(value * SERVER_MARGIN, 3)} if value else {}
    estimate = result.early_stopping_latency_ss_ns if scenario is Scenario.SINGLE_STREAM \
        else result.early_stopping_latency_ms_ns
    value = estimate or result.latency_percentiles_ns.get("90.00")
    return {"target_latency_ms": round(value / 1e6 * LATENCY_MARGIN, 4)} if value else {}


def not_rerunnable(samples_failed: int, errors: dict[str, int], reasons: list[str]
                   ) -> str | None:
    """Why a run must not be rerun (or calibrated from) at all, or None. A run whose
    samples failed measured the failures: with ``on_error: stop`` they end at once, and
    their "rate" (264,454 samples/s measured on a 2-core machine) is no target. A run
    with LoadGen errors is no measurement either. Changing the target cannot fix them."""
    if samples_failed:
        first = next(iter(errors), "")
        return (f"{samples_failed} sample(s) failed" + (f" ({first})" if first else "")
                + ", so its rate measures the failures, not the model")
    errors_seen = [r for r in reasons if r.startswith("LoadGen error")]
    if errors_seen:
        return f"{errors_seen[0]}, so the run measured nothing a target can fix"
    return None


def adjust(scenario: Scenario, loadgen: LoadGenResult | Mapping[str, Any] | None,
           used: dict[str, Any], *, offline_raise: float = OFFLINE_RERUN_RAISE,
           ) -> tuple[dict[str, Any], str] | None:
    """After an INVALID valid run: (new target, the failed constraint and the rule), or
    None when changing the target cannot help (or LoadGen gave no verdict).
    ``offline_raise``: how far above the measured rate an Offline rerun asks (test mode's
    short runs pass their own, larger padding: a warming model speeds up run to run)."""
    result = _parsed(loadgen)
    if result is None or result.valid is not False:
        return None
    duration_failed = result.min_duration_met is False
    latency_failed = result.performance_constraints_met is False or (
        result.early_stopping_met is False)
    if scenario is Scenario.OFFLINE and duration_failed:
        measured = result.samples_per_second or used.get("target_qps")
        if measured:
            # the query must last min_duration: scale the target by how short it fell
            wanted = float(result.effective_settings.get("min_duration_ms") or 0)
            lasted = float(result.duration_ms or 0)
            scaled = (used.get("target_qps") or 0) * (wanted / lasted if lasted else 1.0)
            qps = max(measured, scaled) * offline_raise
            return ({"target_qps": round(qps, 3)},
                    "Offline finished before the minimum duration: asking for more samples "
                    f"(target_qps {qps:.4g}, {offline_raise:g}x the measured rate)")
    if scenario is Scenario.SERVER and (latency_failed or duration_failed):
        current = used.get("target_qps") or result.completed_samples_per_sec
        if current:
            return ({"target_qps": round(current * RERUN_STEP, 3)},
                    "Server missed its latency bound or early stopping: lowering target_qps "
                    f"to {current * RERUN_STEP:.4g}")
    if scenario in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM) and (
            duration_failed or result.early_stopping_met is False):
        latency = used.get("target_latency_ms")
        if latency:
            return ({"target_latency_ms": round(latency * RERUN_STEP, 4)},
                    f"{scenario.value} ran out of queries before the minimum duration: "
                    f"expecting a lower latency ({latency * RERUN_STEP:.4g} ms) so LoadGen "
                    "generates more")
    return None


# ----------------------------------------------------------------------- bisection

T = TypeVar("T")


@dataclass(frozen=True)
class Probe(Generic[T]):
    """One value tried: what the probe returned for it, and whether that passed."""

    value: float
    outcome: T
    passed: bool


@dataclass(frozen=True)
class Bisection(Generic[T]):
    """Every probe of a :func:`bisect_target` search, in the order they ran."""

    probes: tuple[Probe[T], ...]

    @property
    def best(self) -> Probe[T] | None:
        """The probe of the highest value that passed, or None when none did."""
        passed = [p for p in self.probes if p.passed]
        return max(passed, key=lambda p: p.value) if passed else None

    @property
    def last(self) -> Probe[T] | None:
        """The last probe run (None when there were no steps)."""
        return self.probes[-1] if self.probes else None


def bisect_target(probe: Callable[[float], T], low: float, high: float, steps: int, *,
                  passed: Callable[[T], bool] = bool) -> Bisection[T]:
    """Search the highest target that passes (the Server QPS that runs VALID) between
    ``low`` and ``high``: ``steps`` probes, each of the midpoint of what is left; a pass
    searches above it, a failure below. ``probe(value)`` runs the value; ``passed``
    says whether its outcome passed (by default the outcome's truth, for a probe that
    returns a bool). Neither bound is probed itself."""
    if steps < 0 or not low <= high:
        raise ValueError(f"bisect_target needs low <= high and steps >= 0, not "
                         f"{low}..{high} in {steps} steps")
    probes: list[Probe[T]] = []
    for _ in range(steps):
        value = (low + high) / 2
        outcome = probe(value)
        ok = bool(passed(outcome))
        probes.append(Probe(value, outcome, ok))
        if ok:
            low = value
        else:
            high = value
    return Bisection(tuple(probes))

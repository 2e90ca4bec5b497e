"""Calibration: targets that make valid runs succeed the first time.

``--execution-mode find`` measures what this system sustains (Offline samples/s,
SingleStream/MultiStream latency, Server peak QPS) and writes it to a targets file the
user owns and can edit (YAML, one entry per system/model/scenario). ``valid`` runs use
mlperf.conf's official durations with those targets. When a valid run comes back
INVALID anyway, :func:`adjust` says which constraint failed and what target to use,
and the runner reruns once (``max_reruns``), keeping both runs' logs.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.config import Scenario
from mlperf_pilot.errors import ConfigError

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
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"targets file {self.path} is not valid YAML: {exc}",
                              hint="fix it or delete it and run --execution-mode find") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"targets file {self.path} must hold a mapping")
        return data

    def get(self, system: str, model: str, scenario: Scenario) -> dict[str, Any]:
        entry = ((self.data.get(system) or {}).get(model) or {}).get(scenario.value)
        return dict(entry) if isinstance(entry, dict) else {}

    def set(self, system: str, model: str, scenario: Scenario, values: dict[str, Any]) -> None:
        entry = {k: v for k, v in values.items() if v is not None}
        entry["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.data.setdefault(system, {}).setdefault(model, {})[scenario.value] = entry

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(HEADER + yaml.safe_dump(self.data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def target_from_find(scenario: Scenario, loadgen: dict[str, Any]) -> dict[str, Any]:
    """The target a find run supports, with the margin valid runs use."""
    if scenario is Scenario.OFFLINE:
        value = loadgen.get("samples_per_second")
        return {"target_qps": round(value * OFFLINE_MARGIN, 3)} if value else {}
    if scenario is Scenario.SERVER:
        value = loadgen.get("completed_samples_per_sec")
        return {"target_qps": round(value * SERVER_MARGIN, 3)} if value else {}
    key = "early_stopping_latency_ss_ns" if scenario is Scenario.SINGLE_STREAM else \
        "early_stopping_latency_ms_ns"
    value = loadgen.get(key) or loadgen.get("latency_percentiles_ns", {}).get("90.00")
    return {"target_latency_ms": round(value / 1e6 * LATENCY_MARGIN, 4)} if value else {}


def adjust(scenario: Scenario, loadgen: dict[str, Any], used: dict[str, Any]
           ) -> tuple[dict[str, Any], str] | None:
    """After an INVALID valid run: (new target, the failed constraint and the rule), or
    None when changing the target cannot help."""
    if loadgen.get("valid") is not False:
        return None
    duration_failed = loadgen.get("min_duration_met") is False
    latency_failed = loadgen.get("performance_constraints_met") is False or (
        loadgen.get("early_stopping_met") is False)
    if scenario is Scenario.OFFLINE and duration_failed:
        measured = loadgen.get("samples_per_second") or used.get("target_qps")
        if measured:
            # the query must last min_duration: scale the target by how short it fell
            wanted = float((loadgen.get("effective_settings") or {}).get("min_duration_ms") or 0)
            lasted = float(loadgen.get("duration_ms") or 0)
            scaled = (used.get("target_qps") or 0) * (wanted / lasted if lasted else 1.0)
            qps = max(measured, scaled) * OFFLINE_RERUN_RAISE
            return ({"target_qps": round(qps, 3)},
                    "Offline finished before the minimum duration: asking for more samples "
                    f"(target_qps {qps:.4g}, {OFFLINE_RERUN_RAISE}x the measured rate)")
    if scenario is Scenario.SERVER and (latency_failed or duration_failed):
        current = used.get("target_qps") or loadgen.get("completed_samples_per_sec")
        if current:
            return ({"target_qps": round(current * RERUN_STEP, 3)},
                    "Server missed its latency bound or early stopping: lowering target_qps "
                    f"to {current * RERUN_STEP:.4g}")
    if scenario in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM) and (
            duration_failed or loadgen.get("early_stopping_met") is False):
        latency = used.get("target_latency_ms")
        if latency:
            return ({"target_latency_ms": round(latency * RERUN_STEP, 4)},
                    f"{scenario.value} ran out of queries before the minimum duration: "
                    f"expecting a lower latency ({latency * RERUN_STEP:.4g} ms) so LoadGen "
                    "generates more")
    return None

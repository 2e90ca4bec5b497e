"""summary.csv as the official checker writes it: one row per valid result, and for a
power result a second row with the power metric (Watts or millijoules).

Columns and values follow the official ``results.py``: Units from the benchmark (LLM
benchmarks report Tokens/s), Accuracy as ``metric: value`` pairs separated by two
spaces, has_power True/False, design_power_watts "None" where the round reads a
nameplate file but found none. One deliberate difference: ``inferred`` is 1 only for a
result inferred from another scenario's run, by the same case-insensitive rule the
official checker uses for its verdict; the official CSV compares case-sensitively, so
it writes 1 for a lower-case scenario folder (``offline``) and for every Interactive
result (a Server run).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.submission.rounds import common

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import CheckReport, ResultVerdict

SUMMARY_COLUMNS = (
    "Organization", "Availability", "Division", "SystemType", "SystemName", "Platform",
    "Model", "MlperfModel", "Scenario", "Result", "Accuracy", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "accelerator_model_name", "accelerators_per_node", "total_accelerators", "Location",
    "framework", "operating_system", "notes", "compliance", "errors", "version", "inferred",
    "has_power", "Units", "weight_data_types", "design_power_watts", "PrivateID",
)


def unit(mlperf_model: str, scenario: str) -> str:
    facts = common()
    return facts.special_units.get(mlperf_model, {}).get(scenario) or \
        facts.units.get(scenario, "")


def accuracy_text(accuracy: dict[str, str]) -> str:
    """``{"ROUGE1": "45.1", "ROUGE2": "22.3"}`` -> ``ROUGE1: 45.1  ROUGE2: 22.3``."""
    return "  ".join(f"{metric}: {value}" for metric, value in accuracy.items())


def _row(report: CheckReport, v: ResultVerdict) -> dict[str, Any]:
    system = v.system_json or {}
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS, "")
    notes = str(system.get("hw_notes", "") or "")
    if system.get("sw_notes"):
        notes = (notes + ". " if notes else "") + str(system["sw_notes"])
    row.update({
        "Organization": v.submitter, "Availability": system.get("status", ""),
        "Division": v.division, "SystemType": system.get("system_type", ""),
        "SystemName": system.get("system_name", ""), "Platform": v.system,
        "Model": v.benchmark, "MlperfModel": v.mlperf_model, "Scenario": v.scenario_dir,
        "Result": v.metric, "Accuracy": accuracy_text(v.accuracy),
        "number_of_nodes": system.get("number_of_nodes", ""),
        "host_processor_model_name": system.get("host_processor_model_name", ""),
        "host_processors_per_node": system.get("host_processors_per_node", ""),
        "host_processor_core_count": system.get("host_processor_core_count", ""),
        "accelerator_model_name": system.get("accelerator_model_name", ""),
        "accelerators_per_node": system.get("accelerators_per_node", ""),
        "Location": str(Path(v.perf_path).parent),
        "framework": system.get("framework", ""),
        "operating_system": system.get("operating_system", ""),
        "notes": notes, "compliance": v.division, "errors": 0, "version": report.round,
        "inferred": 1 if v.inferred else 0, "has_power": v.has_power,
        "Units": unit(v.mlperf_model, v.scenario),
        "weight_data_types": (v.measurements or {}).get("weight_data_types", ""),
        "design_power_watts": (str(v.design_power_watts)
                               if report.rules_number >= (6, 1) else ""),
    })
    try:
        row["total_accelerators"] = int(row["number_of_nodes"]) * int(
            row["accelerators_per_node"])
    except (TypeError, ValueError):
        row["total_accelerators"] = ""
    return row


def summary_rows(report: CheckReport) -> list[dict[str, Any]]:
    """The official summary.csv rows: one per valid result, two for a power result."""
    rows = []
    for v in report.valid_results:
        row = _row(report, v)
        rows.append(row)
        if v.has_power:
            rows.append({**row, "Result": v.power_metric,
                         "Units": common().power_units.get(v.scenario, "")})
    return rows


def write_summary_csv(report: CheckReport, path: Path) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        writer.writerows(summary_rows(report))



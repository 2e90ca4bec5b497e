"""The system-description and measurements rules of a result, as the official
``system_check.py`` and ``measurements_checks.py`` apply them, plus one of ours: a
result mlperf-pilot's own records call INVALID or FAILED, or whose runs had failed
samples, is an error (``submission generate --include-invalid`` writes that into
measurements.json under ``mlperf_pilot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.submission.rounds import SYSTEM_TYPES, common
from mlperf_pilot.submission.system import NOT_DETECTED
from mlperf_pilot.submission.tree_files import files as _files
from mlperf_pilot.submission.tree_files import read_json as _read_json
from mlperf_pilot.vocab import RunStatus

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import CheckOptions, ResultChecks

RECORDS_KEY = "mlperf_pilot"  # measurements.json: {"records": {mode: {...}}}


def system_findings(system: dict[str, Any] | None, division: str, submitter: str,
                    options: CheckOptions, result: str = "") -> list[Finding]:
    """The system-description rules (also used by `mlperf-pilot system --check`)."""
    f = Findings(result=result)
    facts = common()
    if system is None:
        f.error("system.missing", "the system description JSON is missing",
                "write systems/<system>.json (mlperf-pilot system)")
        return f.items
    status = str(system.get("status", "")).lower()
    if status not in facts.valid_availabilities:
        f.error("system.status", f"status {system.get('status')!r} is not one of "
                f"{', '.join(facts.valid_availabilities)}", "set status")
    if system.get("system_type") not in SYSTEM_TYPES:
        f.error("system.type", f"system_type {system.get('system_type')!r} is not one of "
                f"{', '.join(SYSTEM_TYPES)}", "set system_type")
    is_network = str(system.get("is_network", "false")).lower() == "true"
    expected = {"network": True, "closed": False}.get(division)
    if expected is not None and expected != is_network:
        f.error("system.network-mode",
                f"is_network={is_network} does not fit the {division} division",
                "set is_network to true only for network-division systems")
    required = list(facts.system_required_fields)
    if system.get("is_network"):
        required += facts.system_network_fields
    check_empty = not options.skip_meaningful_fields_emptiness_check
    for key in required:
        if system.get(key) == NOT_DETECTED:
            f.warning("system.fields", f"field {key} was not detected and still holds the "
                      "placeholder", "fill it in the system override file")
        if key not in system:
            f.error("system.fields", f"field {key} is missing",
                    "add it (mlperf-pilot system fills what it can detect)")
        elif check_empty and key in facts.system_meaningful_fields and not system[key]:
            f.error("system.fields", f"field {key} needs a meaningful value but is empty",
                    "fill it in the override file")
    if str(system.get("submitter", "")).lower() != submitter.lower():
        f.error("system.submitter", f"submitter {system.get('submitter')!r} differs from "
                f"the folder {submitter!r}", "make them equal")
    if str(system.get("division", "")).lower() != division.lower():
        f.error("system.division", f"division {system.get('division')!r} differs from "
                f"the folder {division!r}", "make them equal")
    return f.items


def check_measurements(ctx: ResultChecks) -> None:
    layout = ctx.c.layout
    path = ctx.base / layout.measurements_json(ctx.v.system, ctx.v.benchmark,
                                                ctx.v.scenario_dir)
    if not layout.unified and not path.is_file():
        candidates = [n for n in _files(ctx.measure_dir)
                      if n.startswith(ctx.v.system) and n.endswith(".json")]
        path = ctx.measure_dir / candidates[0] if candidates else path
    data = _read_json(path)
    ctx.v.measurements = data if isinstance(data, dict) else None
    if not isinstance(data, dict):
        ctx.f.error("measurements.missing", f"{ctx.rel(path)} is missing or not JSON",
                    "write the measurements JSON (input_data_types, retraining, ...)")
    else:
        records_findings(ctx, data)
        for key in ctx.c.common.measurements_required_fields:
            if key not in data:
                ctx.f.error("measurements.fields", f"measurements field {key} is missing",
                            "add it to the measurements JSON")
            elif not ctx.c.options.skip_meaningful_fields_emptiness_check and not data[key]:
                ctx.f.error("measurements.fields", f"measurements field {key} is empty",
                            "give it a value")
    src = ctx.base / layout.source_dir
    if not src.is_dir():
        ctx.f.error("measurements.source", f"{ctx.rel(src)} does not exist",
                    f"add the code that produced the results under {layout.source_dir}/")
    present = _files(ctx.measure_dir)
    for name in ctx.c.common.measurements_required_files:
        file = ctx.measure_dir / name
        if name not in present:
            ctx.f.error("measurements.files", f"{ctx.rel(file)} is missing",
                        f"add {name} next to the results")
        elif not ctx.c.options.skip_empty_files_check and file.stat().st_size == 0:
            ctx.f.error("measurements.files", f"{ctx.rel(file)} is empty",
                        f"{name} must not be empty")

# --------------------------------------------------------------------- compliance


def records_findings(ctx: ResultChecks, data: dict[str, Any]) -> None:
    """What mlperf-pilot's own records said of the runs (kept by generate)."""
    block = data.get(RECORDS_KEY)
    records = block.get("records", {}) if isinstance(block, dict) else {}
    for mode, record in sorted(records.items()):
        if not isinstance(record, dict):
            continue
        status = str(record.get("status", RunStatus.VALID.value))
        failed = int(record.get("samples_failed", 0) or 0)
        if status != RunStatus.VALID or failed:
            reasons = "; ".join(str(r) for r in record.get("reasons", [])) or \
                f"{failed} sample(s) failed"
            ctx.f.error("measurements.records",
                        f"the {mode} run is {status} in mlperf-pilot's records"
                        f"{f' with {failed} failed sample(s)' if failed else ''}: {reasons}",
                        "fix the cause and rerun; generate without --include-invalid")

"""Power results, as the official ``power_check.py`` reads them.

A result has power when ``performance/power`` exists. Then ``performance/run_1`` and
``performance/ranging`` must hold exactly LoadGen's summary and detail logs plus the
power samples ``spl.txt`` (the accuracy log, trace and results.json are tolerated), and
``performance/power`` exactly the PTD session files (client/server .json/.log,
ptd_logs.txt). The power metric is the mean of the positive watt samples of run_1's
``spl.txt`` between LoadGen's ``power_begin`` and ``power_end``: watts for
Offline/Server/Interactive, millijoules per query for SingleStream/MultiStream.

Not done here: the Power WG's PTD session checks (``power/power_checker.py``: source
checksums, PTD messages, UUIDs, phase timing, result-file hashes). A warning says so;
the official checker runs them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlperf_pilot.loadgen.logs import DetailLog, logged_scenario
from mlperf_pilot.submission.rounds import INTERACTIVE
from mlperf_pilot.submission.tree_files import files
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import ResultChecks

TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"


def _files(path: Path) -> set[str]:
    return set(files(path))


def file_list_problem(folder: Path, required: list[str], optional: list[str]) -> str | None:
    if not folder.is_dir():
        return "is missing"
    present = _files(folder)
    missing = sorted(set(required) - present)
    extra = sorted(present - set(required) - set(optional))
    if missing or extra:
        return f"file list mismatch (missing {missing}, extra {extra})"
    return None


def check_power(ctx: ResultChecks, perf: DetailLog | None) -> None:
    performance = ctx.scenario_dir / "performance"
    power_dir = performance / "power"
    if not power_dir.exists():
        return
    ctx.v.has_power = True
    facts = ctx.c.common
    run_optional = facts.power_run_optional_files + facts.always_optional_files
    folders = ((performance / "run_1", facts.power_run_files, run_optional),
               (performance / "ranging", facts.power_run_files, run_optional),
               (power_dir, facts.power_files, facts.always_optional_files))
    for folder, required, optional in folders:
        problem = file_list_problem(folder, required, optional)
        if problem:
            ctx.f.error("power.files", f"{ctx.rel(folder)} {problem}",
                        f"a power result keeps exactly {', '.join(required)} there "
                        "(as the PTD client writes them)")
    ctx.f.warning("power.ptd", "the PTD session logs are not verified here",
                  "run the official checker (its power_checker.py) before submitting")
    if perf is not None:
        power_metric(ctx, perf, performance / "run_1" / "spl.txt")
    design_power(ctx)


def _when(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(str(text).strip(), TIME_FORMAT)
    except ValueError:
        return None


def read_samples(spl: Path, begin: dt.datetime, end: dt.datetime) -> list[float]:
    """The positive watt readings of a PTD ``spl.txt`` strictly between begin and end."""
    watts = []
    for line in spl.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("Time"):
            continue
        fields = line.split(",")
        when = _when(fields[1]) if len(fields) > 3 else None
        try:
            value = float(fields[3]) if len(fields) > 3 else 0.0
        except ValueError:
            continue
        if when is not None and begin < when < end and value > 0:
            watts.append(value)
    return watts


def power_metric(ctx: ResultChecks, perf: DetailLog, spl: Path) -> None:
    begin, end = _when(perf.get("power_begin")), _when(perf.get("power_end"))
    if begin is None or end is None:
        ctx.f.error("power.window", "the performance log has no power_begin/power_end",
                    "use LoadGen's own detail log of the measured run")
        return
    samples = read_samples(spl, begin, end) if spl.is_file() else []
    if not samples:
        ctx.f.error("power.samples",
                    f"{ctx.rel(spl)} has no power sample between {begin} and {end}",
                    "keep the spl.txt the PTD recorded during this run")
        return
    watts = sum(samples) / len(samples)
    fixed = ctx.v.scenario
    if fixed in (Scenario.OFFLINE, Scenario.SERVER, INTERACTIVE):
        ctx.v.power_metric = watts
        return
    queries = int(perf.get("result_query_count") or 0)
    if not queries:
        ctx.f.error("power.queries", "the performance log has no result_query_count",
                    "use LoadGen's own detail log of the measured run")
        return
    seconds = (end - begin).total_seconds()
    per_query = watts * seconds * 1000 / queries
    if fixed == Scenario.MULTI_STREAM and logged_scenario(perf) is Scenario.SINGLE_STREAM:
        per_query *= 8
    ctx.v.power_metric = per_query


def design_power(ctx: ResultChecks) -> None:
    """summary.csv's design_power_watts (rounds with a nameplate file, v6.1 on): the
    system's ``system_power_capacity``, else the sum over the nameplate YAML's
    components of their needed power supplies' capacities."""
    if ctx.c.rules.number < (6, 1):
        return
    system = ctx.v.system_json or {}
    if "system_power_capacity" in system:
        ctx.v.design_power_watts = system["system_power_capacity"]
        return
    path = ctx.base / "systems" / f"{ctx.v.system}_power.yaml"
    if not path.is_file():
        ctx.f.warning("power.nameplate", f"{ctx.rel(path)} is missing",
                      "describe the power supplies (PSUs, Min PSUs Needed) there")
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        ctx.f.error("power.nameplate", f"{ctx.rel(path)} cannot be read: {exc}",
                    "make it valid YAML")
        return
    ctx.v.design_power_watts = nameplate_watts(data)


def nameplate_watts(node: Any) -> float:
    if isinstance(node, list):
        return sum(nameplate_watts(item) for item in node)
    if not isinstance(node, dict):
        return 0
    keys = {str(k).lower(): k for k in node}
    if "psus" in keys and "min psus needed" in keys:
        capacities = sorted((psu.get("PowerCapacityWatts", 0) for psu in node[keys["psus"]]),
                            reverse=True)
        return sum(capacities[:int(node[keys["min psus needed"]])])
    return sum(nameplate_watts(v) for v in node.values() if isinstance(v, (dict, list)))

"""Check a submission tree as the official submission checker does.

The rules are those of ``tools/submission/submission_checker`` (mlcommons/inference) for
the chosen round, written anew and grouped as the official checks are, one module each:
performance (:mod:`.check_performance`), accuracy (:mod:`.check_accuracy`), system and
measurements (:mod:`.check_system`), power (:mod:`.power`), compliance
(:mod:`.check_compliance`); summary.csv is :mod:`.summary_csv`. This module walks the
tree and resolves each result folder's benchmark as the official checker does (see
:meth:`Round.mlperf_model`). Every finding names the rule it breaks and what to do. A
result is valid when it has no error; open-division accuracy misses are warnings, as in
the official checker.

Deliberate differences (where the official code contradicts its own messages, or misses
what makes a result wrong): LoadGen errors in a performance log are errors unless
``submission_exceptions`` allows them (the official checker only looks at them with
``--submission-exceptions``); the equal-issue rule fails when equal issue is *off* for a
model that needs it; a run LoadGen itself judged INVALID gets a warning; an accuracy
log that is not LoadGen's JSON (cut short, garbage) is an error; so is a result that
mlperf-pilot's own records mark INVALID/FAILED or with failed samples. The Power WG's PTD
session checks are not done (a warning says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.submission.check_accuracy import _detail, check_accuracy
from mlperf_pilot.submission.check_compliance import check_compliance
from mlperf_pilot.submission.check_performance import check_performance
from mlperf_pilot.submission.check_system import check_measurements, system_findings
from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.submission.power import check_power
from mlperf_pilot.submission.rounds import INTERACTIVE, LATEST, Round, common, load_round
from mlperf_pilot.submission.summary_csv import (
    SUMMARY_COLUMNS,
    summary_rows,
    write_summary_csv,
)
from mlperf_pilot.submission.tree_files import dirs as _dirs
from mlperf_pilot.submission.tree_files import read_json as _read_json
from mlperf_pilot.vocab import ALL_SCENARIOS, Scenario

__all__ = ["SUMMARY_COLUMNS", "CheckOptions", "CheckReport", "ResultVerdict",
           "check_submission", "summary_rows", "system_findings", "write_summary_csv"]

DIVISIONS = ("closed", "open", "network")
# folder name, any case -> the scenario's spelling (the four of LoadGen, and Interactive)
SCENARIOS = {name.lower(): name for name in (*(s.value for s in ALL_SCENARIOS), INTERACTIVE)}


@dataclass(frozen=True)
class CheckOptions:
    round: str = LATEST
    submitter: str | None = None
    skip_compliance: bool = False
    submission_exceptions: bool = False
    skip_meaningful_fields_emptiness_check: bool = False
    skip_empty_files_check: bool = False
    skip_dataset_size_check: bool = False
    skip_extra_accuracy_files_check: bool = False
    scenarios_to_skip: tuple[str, ...] = ()


@dataclass
class ResultVerdict:
    division: str
    submitter: str
    system: str
    benchmark: str  # the directory name
    scenario: str  # canonical scenario name: a Scenario's value, or Interactive
    scenario_dir: str
    mlperf_model: str
    findings: list[Finding] = field(default_factory=list)
    metric: float | None = None
    accuracy: dict[str, str] = field(default_factory=dict)
    inferred: bool = False
    run_scenario: str = ""  # the scenario LoadGen ran (effective_scenario)
    perf_path: str = ""  # the performance log, under the root as given
    has_power: bool = False
    power_metric: float | None = None
    design_power_watts: Any = None
    system_json: dict[str, Any] | None = None
    measurements: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return "/".join((self.division, self.submitter, self.system, self.benchmark,
                         self.scenario_dir))

    @property
    def valid(self) -> bool:
        return not any(f.is_error for f in self.findings)


@dataclass
class CheckReport:
    root: Path
    round: str
    verdicts: list[ResultVerdict] = field(default_factory=list)
    tree_findings: list[Finding] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [*self.tree_findings, *(f for v in self.verdicts for f in v.findings)]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.verdicts)

    @property
    def rules_number(self) -> tuple[int, int]:
        return load_round(self.round).number

    @property
    def valid_results(self) -> list[ResultVerdict]:
        return [v for v in self.verdicts if v.valid]


def _canonical(scenario: str) -> str:
    return SCENARIOS.get(scenario.lower(), scenario)


# ------------------------------------------------------------------------------ walking


class Checker:
    def __init__(self, root: Path, options: CheckOptions) -> None:
        self.root = Path(root)
        self.options = options
        self.rules: Round = load_round(options.round)
        self.common = common()
        self.layout = self.rules.layout

    def run(self) -> CheckReport:
        report = CheckReport(self.root, self.rules.round)
        tree = Findings()
        for division in _dirs(self.root):
            if division not in DIVISIONS:
                continue
            for submitter in _dirs(self.root / division):
                if self.options.submitter and submitter != self.options.submitter:
                    continue
                self._submitter(report, tree, division, submitter)
        if not report.verdicts:
            tree.error("structure.no-results",
                       f"no results found under {self.root} for round {self.rules.round}",
                       "point at the folder holding closed/ or open/ "
                       "(<division>/<submitter>/results/...)")
        report.tree_findings = tree.items
        return report

    def _submitter(self, report: CheckReport, tree: Findings, division: str,
                   submitter: str) -> None:
        base = self.root / division / submitter
        results = base / "results"
        if not results.is_dir():
            tree.error("structure.results", f"{division}/{submitter} has no results folder",
                       "results go to <division>/<submitter>/results/<system>/<benchmark>/"
                       "<scenario>", path=f"{division}/{submitter}")
            return
        mapping: dict[str, str] = {}
        if division == "open" and (base / "model_mapping.json").is_file():
            mapping = _read_json(base / "model_mapping.json") or {}
        for system in _dirs(results):
            system_json = _read_json(base / "systems" / f"{system}.json")
            for benchmark in _dirs(results / system):
                scenarios = _dirs(results / system / benchmark)
                coverage = self._coverage(division, benchmark, mapping, system_json, scenarios)
                for scenario_dir in scenarios:
                    if _canonical(scenario_dir) in {_canonical(s) for s in
                                                    self.options.scenarios_to_skip}:
                        continue
                    verdict = ResultVerdict(
                        division=division, submitter=submitter, system=system,
                        benchmark=benchmark, scenario=_canonical(scenario_dir),
                        scenario_dir=scenario_dir,
                        mlperf_model=self.rules.mlperf_model(benchmark, mapping),
                        system_json=system_json,
                    )
                    found = Findings(result=verdict.key)
                    for message in coverage:
                        found.error("performance.scenarios", message,
                                    "run and add every scenario the system type requires "
                                    "(or use the open division)")
                    ResultChecks(self, base, verdict, found).run()
                    verdict.findings = found.items
                    report.verdicts.append(verdict)

    def _coverage(self, division: str, benchmark: str, mapping: dict[str, str],
                  system_json: dict[str, Any] | None, scenarios: list[str]) -> list[str]:
        """Closed/network: the scenarios present against those the system type requires."""
        if division == "open" or system_json is None:
            return []
        model = self.rules.mlperf_model(benchmark, mapping)
        rules = self.rules.models.get(model)
        if rules is None:
            return [f"{benchmark} is not a benchmark of round {self.rules.round}"]
        system_type = str(system_json.get("system_type", ""))
        required, optional = rules.scenarios_for(system_type)
        present = {_canonical(s) for s in scenarios}
        messages = []
        missing = [s for s in required if s not in present]
        one_of = {INTERACTIVE, Scenario.SERVER.value}
        if one_of <= set(optional) and not (one_of & present):
            missing.append("(one of) Interactive or Server")
        if missing:
            messages.append(f"{benchmark} lacks required scenarios for a {system_type} "
                            f"system: {', '.join(missing)}")
        unknown = sorted(present - set(required) - set(optional))
        if unknown:
            messages.append(f"{benchmark} has scenarios not in the benchmark for a "
                            f"{system_type} system: {', '.join(unknown)}")
        return messages


# ------------------------------------------------------------------------------ one result


class ResultChecks:
    """Every rule for one result folder."""

    def __init__(self, checker: Checker, base: Path, verdict: ResultVerdict,
                 found: Findings) -> None:
        self.c = checker
        self.base = base
        self.v = verdict
        self.f = found
        self.rules = checker.rules.models.get(verdict.mlperf_model)
        layout = checker.layout
        self.scenario_dir = base / layout.scenario_dir(verdict.system, verdict.benchmark,
                                                       verdict.scenario_dir)
        self.measure_dir = base / layout.measurements_dir(verdict.system, verdict.benchmark,
                                                          verdict.scenario_dir)
        self.compliance_dir = base / layout.compliance_dir(verdict.system, verdict.benchmark,
                                                           verdict.scenario_dir)
        self.open = verdict.division == "open"

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.c.root))
        except ValueError:
            return str(path)

    def run(self) -> None:
        if self.rules is None:
            self.f.error("structure.benchmark",
                         f"{self.v.benchmark} maps to {self.v.mlperf_model}, which is not a "
                         f"benchmark of round {self.c.rules.round}",
                         "name the benchmark folder as the checker does, or map it in "
                         "model_mapping.json (open division)")
            return
        perf_path = self.scenario_dir / "performance" / "run_1" / "mlperf_log_detail.txt"
        self.v.perf_path = str(perf_path)
        perf = _detail(perf_path)
        if perf is None:
            self.f.error("performance.missing", f"{self.rel(perf_path)} is missing or unreadable",
                         "copy performance/run_1 of a performance run here")
        else:
            check_performance(self, perf, self.f, compliance=False)
        check_accuracy(self)
        self.f.items.extend(system_findings(self.v.system_json, self.v.division,
                                            self.v.submitter, self.c.options, self.f.result))
        check_measurements(self)
        check_power(self, perf)
        if not self.open and not self.c.options.skip_compliance:
            check_compliance(self)


def check_submission(root: Path, options: CheckOptions | None = None) -> CheckReport:
    return Checker(Path(root), options or CheckOptions()).run()

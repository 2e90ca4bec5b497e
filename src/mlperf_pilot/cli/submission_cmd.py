"""`system` and `submission generate|check|pack`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from mlperf_pilot.cli.app import (
    cli,
    common_options,
    stderr,
    stdout,
)
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK
from mlperf_pilot.submission.rounds import DEFAULT_ROUND, available_rounds

# ---------------------------------------------------------------------------- system


def _system_fields(command: Callable[..., Any]) -> Callable[..., Any]:
    """The system description's --system-type and --status, as `system` and
    `submission generate` both take them."""
    command = click.option("--status", type=click.Choice(["available", "preview", "rdi"]),
                           default="available", show_default=True,
                           help="The availability status.")(command)
    return click.option("--system-type",
                        type=click.Choice(["datacenter", "edge", "datacenter,edge"]),
                        default="edge", show_default=True, help="The system_type field.")(command)


@cli.command()
@click.option("--division", type=click.Choice(["closed", "open", "network"]), default="open",
              show_default=True, help="The division the system is submitted in (with --check: "
              "the file's own unless given).")
@click.option("--submitter", default="", help="Submitting organization (default: none; with "
              "--check: the file's own).")
@click.option("--system-name", default=None, help="system_name (default: the CPU model).")
@_system_fields
@click.option("--overrides", type=click.Path(path_type=Path),
              help="YAML/JSON file whose fields win over detection (default: none).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the JSON here (default: stdout).")
@click.option("--check", "check_file", type=click.Path(path_type=Path),
              help="Check an existing system JSON instead of detecting (takes --division "
              "and --submitter only).")
@common_options(cache_dir=False)
@click.pass_context
def system(ctx: click.Context, division: str, submitter: str, system_name: str | None,
           system_type: str, status: str, overrides: Path | None, out: Path | None,
           check_file: Path | None) -> None:
    """Detect this machine and write the system description JSON (or --check one)."""
    from mlperf_pilot.submission.check import CheckOptions, system_findings
    from mlperf_pilot.submission.system import describe_system, load_overrides

    if check_file is not None:
        given = [f"--{name.replace('_', '-')}" for name in
                 ("system_name", "system_type", "status", "overrides", "out")
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(
                f"--check reads an existing file and would ignore {', '.join(given)}; "
                "check with --division/--submitter only, or describe the system without "
                "--check", ctx=ctx)
        try:
            data = json.loads(check_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"{check_file} is not a readable JSON file: {exc}") from exc
        if ctx.get_parameter_source("division") is not click.core.ParameterSource.COMMANDLINE:
            division = ""  # the file's own
        found = system_findings(data, division or data.get("division", ""),
                                submitter or data.get("submitter", ""), CheckOptions())
        for finding in found:
            stdout.print(f"{finding.severity.upper()} [{finding.rule}] {finding.message}"
                         f" -> {finding.fix}", markup=False)
        errors = sum(f.is_error for f in found)
        stdout.print(f"{check_file}: {errors} error(s), {len(found) - errors} warning(s)")
        raise SystemExit(EXIT_FAILED if errors else EXIT_OK)
    extra = load_overrides(overrides) if overrides else {}
    from mlperf_pilot.results.provenance import cpu_model

    data, still = describe_system(
        division=division, submitter=submitter,
        system_name=system_name or extra.get("system_name") or cpu_model(),
        system_type=system_type, status=status, overrides=extra)
    text = json.dumps(data, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
        stderr.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")
    if still:
        stderr.print(f"not detected, fill in --overrides: {', '.join(still)}")


# ------------------------------------------------------------------------- submission


@cli.group()
def submission() -> None:
    """Build, check and pack an MLPerf submission tree."""


_ROUND_OPTION = click.option("--round", "round_", default=DEFAULT_ROUND, show_default=True,
                             help="Round whose layout and rules apply "
                             f"({', '.join(reversed(available_rounds()))}).")


@submission.command("generate")
@click.option("--division", type=click.Choice(["closed", "open"]), required=True,
              help="The division (closed: only the reference models, every required "
              "scenario).")
@click.option("--submitter", required=True, help="Submitting organization.")
@_ROUND_OPTION
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="The results folder of `mlperf-pilot run`.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("submission"),
              show_default=True, help="The submission tree to write.")
@click.option("--system", "systems", multiple=True,
              help="Only these systems (repeat; default: every system in --results-dir).")
@_system_fields
@click.option("--system-overrides", type=click.Path(path_type=Path),
              help="YAML/JSON system fields that win over detection.")
@click.option("--measurements-overrides", type=click.Path(path_type=Path),
              help="YAML/JSON measurements.json fields.")
@click.option("--backup-dir", type=click.Path(path_type=Path),
              help="Where the untruncated accuracy logs go (default <out>_logs).")
@click.option("--force", is_flag=True, help="Replace an existing <out>/<division>/<submitter>.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the checker on the new tree.")
@click.option("--include-invalid", is_flag=True,
              help="Package results our records mark INVALID/FAILED or with failed "
              "samples, marked as such (the check then reports them).")
@click.option("--allow-unverified-model", is_flag=True,
              help="Closed division: package results whose model file was never checked "
              "against the official checksum (`cache add --no-verify`, --model-path), "
              "marked in their README.md (default: refused).")
@common_options(cache_dir=False)
def submission_generate(division: str, submitter: str, round_: str, results_dir: Path,
                        out: Path, systems: Sequence[str], system_type: str, status: str,
                        system_overrides: Path | None, measurements_overrides: Path | None,
                        backup_dir: Path | None, force: bool, check: bool,
                        include_invalid: bool, allow_unverified_model: bool) -> None:
    """Build the submission tree from a results folder."""
    from mlperf_pilot.errors import SubmissionError
    from mlperf_pilot.submission.generate import GenerateOptions, generate_submission

    try:
        report = generate_submission(GenerateOptions(
            results_dir=results_dir, out=out, division=division, submitter=submitter,
            round=round_, systems=tuple(systems), system_type=system_type, status=status,
            system_overrides=system_overrides, measurements_overrides=measurements_overrides,
            backup_dir=backup_dir, force=force, include_invalid=include_invalid,
            allow_unverified_model=allow_unverified_model))
    except SubmissionError as exc:
        if not exc.findings:
            raise
        _print_refusal(exc)
        raise SystemExit(exc.exit_code) from None
    stdout.print(f"wrote {len(report.results)} result(s) to {report.root / division / submitter}"
                 f" ({report.truncated} accuracy log(s) truncated, originals in "
                 f"{report.backup_dir})")
    for marked in report.included_invalid:
        stderr.print(f"included, marked invalid: {marked}", markup=False)
    for system_id, fields in report.system_placeholders.items():
        if fields:
            stderr.print(f"systems/{system_id}.json: fill {', '.join(fields)} "
                         "(--system-overrides)")
    if check:
        _run_check(report.root, round_, submitter=submitter, csv=None, flags={})


def _print_refusal(exc: Any) -> None:
    """A refused generate: the cause, every result with each rule it breaks, the fix."""
    from rich.text import Text

    stderr.print(Text.assemble(("error:", "red"), f" {exc.message}"))
    by_result: dict[str, list[Any]] = {}
    for finding in exc.findings:
        by_result.setdefault(finding.result or finding.path, []).append(finding)
    for result, findings in by_result.items():
        stderr.print(f"  {result}:", markup=False)
        for f in findings:
            stderr.print(f"    [{f.rule}] {f.message}" + (f" -> {f.fix}" if f.fix else ""),
                         markup=False)
    if exc.hint:
        stderr.print(Text.assemble(("hint:", "yellow"), f" {exc.hint}"))


@submission.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--submitter", help="Only this submitter (default: every one in the tree).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="Also write the official summary.csv to this file (default: not written; "
              "the tree is never changed unless asked).")
@click.option("--skip-compliance", is_flag=True, help="Do not check the compliance tests.")
@click.option("--submission-exceptions", is_flag=True,
              help="Tolerate 'uncommitted LoadGen' errors (and multiple-conf errors in "
              "compliance runs), as the official flag does.")
@click.option("--skip-meaningful-fields-emptiness-check", is_flag=True,
              help="Allow empty system fields that carry meaning (the official flag).")
@click.option("--skip-empty-files-check", is_flag=True,
              help="Allow empty measurement files (the official flag).")
@click.option("--skip-dataset-size-check", is_flag=True,
              help="Allow accuracy runs over part of the data set (the official flag).")
@click.option("--skip-extra-accuracy-files-check", is_flag=True,
              help="Do not require the extra accuracy files some benchmarks need (the "
              "official flag).")
@click.option("--scenarios-to-skip", default="",
              help="Comma-separated scenarios not to check (default: none).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@common_options(cache_dir=False)
def submission_check(directory: Path, round_: str, submitter: str | None,
                     csv_path: Path | None, as_json: bool, **flags: Any) -> None:
    """Check a submission tree as the official submission checker does."""
    _run_check(directory, round_, submitter=submitter, csv=csv_path, flags=flags,
               as_json=as_json)


def _run_check(directory: Path, round_: str, *, submitter: str | None, csv: Path | None,
               flags: dict[str, Any], as_json: bool = False) -> None:
    from mlperf_pilot.cli.render import findings_report
    from mlperf_pilot.submission.check import (
        CheckOptions,
        check_submission,
        summary_rows,
        write_summary_csv,
    )

    scenarios = tuple(s for s in str(flags.pop("scenarios_to_skip", "") or "").split(",") if s)
    options = CheckOptions(round=round_, submitter=submitter, scenarios_to_skip=scenarios,
                           **{k: bool(v) for k, v in flags.items()})
    if not Path(directory).is_dir():
        raise click.UsageError(f"{directory} is not a folder")
    report = check_submission(directory, options)
    csv_path = csv  # only when asked: a check does not write into the tree it checks
    if csv_path is not None:
        write_summary_csv(report, csv_path)
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": report.ok, "round": report.round,
            "summary_csv": str(csv_path) if csv_path is not None else None,
            "results": [{"result": v.key, "valid": v.valid, "metric": v.metric,
                         "benchmark": v.mlperf_model, "findings": [f.__dict__ for f in
                                                                   v.findings]}
                        for v in report.verdicts],
            "findings": [f.__dict__ for f in report.tree_findings],
            "summary_rows": len(summary_rows(report)),
        }, indent=2, default=str) + "\n")
    else:
        for line in findings_report(report):
            stdout.print(line)
        valid = len(report.valid_results)
        stdout.print(f"Results={valid}, NoResults={len(report.verdicts) - valid}, "
                     f"errors={len(report.errors)}, round {report.round}"
                     + (f"; summary: {csv_path}" if csv_path is not None else ""))
        stdout.print("SUMMARY: submission looks OK" if report.ok else
                     "SUMMARY: submission has errors", markup=False)
    if not report.ok:
        raise SystemExit(EXIT_FAILED)


@submission.command("pack")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--out", type=click.Path(path_type=Path),
              help="The archive to write (default <DIRECTORY>.tar.gz).")
@common_options(cache_dir=False)
def submission_pack(directory: Path, round_: str, out: Path | None) -> None:
    """Check the tree, then make the .tar.gz to upload (refused when the check fails)."""
    from mlperf_pilot.submission.check import CheckOptions, check_submission
    from mlperf_pilot.submission.package import pack

    report = check_submission(directory, CheckOptions(round=round_))
    if not report.ok:
        stderr.print(f"the check found {len(report.errors)} error(s); nothing packed "
                     f"(see `mlperf-pilot submission check {directory} --round {round_}`)")
        raise SystemExit(EXIT_FAILED)
    archive = pack(Path(directory), out)
    stdout.print(f"packed {archive} ({archive.stat().st_size} bytes, sha256 in "
                 f"{archive.name}.sha256)")

"""`system` and `submission generate|check|pack`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mlperf_pilot.cli.app import (
    cli,
    stderr,
    stdout,
)
from mlperf_pilot.errors import EXIT_FAILED, EXIT_OK
from mlperf_pilot.submission.rounds import DEFAULT_ROUND, available_rounds

# ---------------------------------------------------------------------------- system


@cli.command()
@click.option("--division", type=click.Choice(["closed", "open", "network"]), default="open",
              show_default=True)
@click.option("--submitter", default="", help="Submitting organization.")
@click.option("--system-name", default=None, help="system_name (default: the CPU model).")
@click.option("--system-type", type=click.Choice(["datacenter", "edge", "datacenter,edge"]),
              default="edge", show_default=True)
@click.option("--status", type=click.Choice(["available", "preview", "rdi"]),
              default="available", show_default=True)
@click.option("--overrides", type=click.Path(path_type=Path),
              help="YAML/JSON file whose fields win over detection.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the JSON here.")
@click.option("--check", "check_file", type=click.Path(path_type=Path),
              help="Check an existing system JSON instead of detecting.")
def system(division: str, submitter: str, system_name: str | None, system_type: str,
           status: str, overrides: Path | None, out: Path | None,
           check_file: Path | None) -> None:
    """Detect this machine and write the system description JSON (or --check one)."""
    from mlperf_pilot.submission.check import CheckOptions, system_findings
    from mlperf_pilot.submission.system import describe_system, load_overrides

    if check_file is not None:
        try:
            data = json.loads(check_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"{check_file} is not a readable JSON file: {exc}") from exc
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
@click.option("--division", type=click.Choice(["closed", "open"]), required=True)
@click.option("--submitter", required=True)
@_ROUND_OPTION
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("submission"),
              show_default=True)
@click.option("--system", "systems", multiple=True, help="Only these systems (repeat).")
@click.option("--system-type", type=click.Choice(["datacenter", "edge", "datacenter,edge"]),
              default="edge", show_default=True)
@click.option("--status", type=click.Choice(["available", "preview", "rdi"]),
              default="available", show_default=True)
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
def submission_generate(division: str, submitter: str, round_: str, results_dir: Path,
                        out: Path, systems: Sequence[str], system_type: str, status: str,
                        system_overrides: Path | None, measurements_overrides: Path | None,
                        backup_dir: Path | None, force: bool, check: bool,
                        include_invalid: bool) -> None:
    """Build the submission tree from a results folder."""
    from mlperf_pilot.submission.generate import GenerateOptions, generate_submission

    report = generate_submission(GenerateOptions(
        results_dir=results_dir, out=out, division=division, submitter=submitter,
        round=round_, systems=tuple(systems), system_type=system_type, status=status,
        system_overrides=system_overrides, measurements_overrides=measurements_overrides,
        backup_dir=backup_dir, force=force, include_invalid=include_invalid))
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


@submission.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--submitter", help="Only this submitter.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              help="summary.csv path (default <DIRECTORY>/summary.csv).")
@click.option("--skip-compliance", is_flag=True)
@click.option("--submission-exceptions", is_flag=True,
              help="Tolerate 'uncommitted LoadGen' errors (and multiple-conf errors in "
              "compliance runs), as the official flag does.")
@click.option("--skip-meaningful-fields-emptiness-check", is_flag=True)
@click.option("--skip-empty-files-check", is_flag=True)
@click.option("--skip-dataset-size-check", is_flag=True)
@click.option("--skip-extra-accuracy-files-check", is_flag=True)
@click.option("--scenarios-to-skip", default="", help="Comma-separated scenarios.")
@click.option("--json", "as_json", is_flag=True)
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
    csv_path = csv or Path(directory) / "summary.csv"
    write_summary_csv(report, csv_path)
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": report.ok, "round": report.round, "summary_csv": str(csv_path),
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
                     f"errors={len(report.errors)}, round {report.round}; summary: {csv_path}")
        stdout.print("SUMMARY: submission looks OK" if report.ok else
                     "SUMMARY: submission has errors", markup=False)
    if not report.ok:
        raise SystemExit(EXIT_FAILED)


@submission.command("pack")
@click.argument("directory", type=click.Path(path_type=Path))
@_ROUND_OPTION
@click.option("--out", type=click.Path(path_type=Path), help="Default <DIRECTORY>.tar.gz")
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

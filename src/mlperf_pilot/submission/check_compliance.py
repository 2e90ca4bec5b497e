"""The compliance rules of one closed-division result (TEST01/04/05/06/07/08), as the
official ``compliance_check.py`` applies them: each test's folder, its verification
files, the compliance run's performance log (judged by the performance rules) and
TEST01's accuracy fallback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf_pilot.submission.check_accuracy import _detail
from mlperf_pilot.submission.check_performance import check_performance
from mlperf_pilot.submission.findings import Finding, Findings
from mlperf_pilot.submission.tree_files import files as _files

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import ResultChecks


def check_compliance(ctx: ResultChecks) -> None:
    rules = ctx.rules
    assert rules is not None
    for test in rules.compliance_tests:
        test_dir = ctx.compliance_dir / test
        rel = ctx.rel(test_dir)
        if not test_dir.is_dir():
            ctx.f.error("compliance.missing", f"{rel} is missing",
                        f"run the {test} compliance test (mlperf-pilot run ... "
                        "--compliance)")
            continue
        if test in ("TEST01", "TEST06", "TEST07", "TEST08") and \
                not (test_dir / "verify_accuracy.txt").is_file():
            ctx.f.error("compliance.files", f"{rel}/verify_accuracy.txt is missing",
                        "run the test's verification")
        if test in ("TEST01", "TEST04", "TEST05"):
            compliance_performance(ctx, test, test_dir)
        if test == "TEST01":
            test01_accuracy(ctx, test_dir)
        if test == "TEST06":
            test06_accuracy(ctx, test_dir)


TEST06_CHECKS = (("First token check pass: True", "First token check pass: Skipped"),
                 ("EOS check pass: True",), ("Sample length check pass: True",))


def test06_accuracy(ctx: ResultChecks, test_dir: Path) -> None:
    """TEST06 (LLM output consistency): every check of verify_accuracy.txt passed."""
    verify = test_dir / "verify_accuracy.txt"
    if not verify.is_file():
        return  # reported as a missing file
    lines = {line.strip() for line in verify.read_text(
        encoding="utf-8", errors="replace").splitlines()}
    failed = [accepted[0].split(" pass:")[0] for accepted in TEST06_CHECKS
              if not any(a in lines for a in accepted)]
    if failed:
        ctx.f.error("compliance.test06", f"TEST06 did not pass: {', '.join(failed)}",
                    "see TEST06/verify_accuracy.txt; fix the outputs and rerun TEST06")


def compliance_performance(ctx: ResultChecks, test: str, test_dir: Path) -> None:
    rel = ctx.rel(test_dir)
    verify = test_dir / "verify_performance.txt"
    if not verify.is_file():
        ctx.f.error("compliance.files", f"{rel}/verify_performance.txt is missing",
                    "run the test's verification")
    elif "TEST PASS" not in verify.read_text(encoding="utf-8", errors="replace"):
        ctx.f.error("compliance.performance", f"{test} performance verification failed",
                    "see verify_performance.txt; the compliance run's score must be "
                    "within the allowed band of the performance run")
    run = test_dir / "performance" / "run_1"
    present = set(_files(run))
    missing = {"mlperf_log_summary.txt", "mlperf_log_detail.txt"} - present
    extra = present - {"mlperf_log_summary.txt", "mlperf_log_detail.txt",
                       "mlperf_log_accuracy.json", *ctx.c.common.always_optional_files}
    if missing or extra:
        ctx.f.error("compliance.files",
                    f"{rel}/performance/run_1 file list mismatch "
                    f"(missing {sorted(missing)}, extra {sorted(extra)})",
                    "keep exactly LoadGen's summary and detail logs there")
    log = _detail(run / "mlperf_log_detail.txt")
    if log is not None:
        sub = Findings(result=ctx.f.result)
        check_performance(ctx, log, sub, compliance=True)
        for finding in sub.items:
            ctx.f.items.append(Finding(finding.severity, "compliance." + finding.rule,
                                        f"{test}: {finding.message}", finding.fix,
                                        finding.path, finding.result))


def test01_accuracy(ctx: ResultChecks, test_dir: Path) -> None:
    verify = test_dir / "verify_accuracy.txt"
    lines = [line.strip() for line in verify.read_text(
        encoding="utf-8", errors="replace").splitlines()] if verify.is_file() else []
    if "TEST PASS" in lines:
        return
    acc = test_dir / "accuracy"
    required = set(ctx.c.common.test01_accuracy_files)
    present = set(_files(acc))
    if not acc.is_dir() or present != required:
        ctx.f.error("compliance.test01-accuracy",
                    "TEST01 outputs differ from the accuracy run and the baseline files "
                    f"are incomplete (need {sorted(required)})",
                    "for non-deterministic backends create the baseline accuracy files")
        return
    rules = ctx.rules
    assert rules is not None
    patterns = ctx.c.common.accuracy_patterns
    for target in rules.targets_for(ctx.v.scenario):
        pattern = patterns.get(target.metric, "")
        base = _first_value(acc / "baseline_accuracy.txt", pattern)
        comp = _first_value(acc / "compliance_accuracy.txt", pattern)
        delta_allowed = rules.accuracy_delta_percent.get(
            target.metric, 0.1 if ctx.v.mlperf_model.endswith("99.9") else 1.0)
        if not base or not comp:
            ctx.f.error("compliance.test01-accuracy",
                        f"TEST01 baseline/compliance {target.metric} could not be read",
                        "regenerate the baseline accuracy files")
        elif abs(1 - base / comp) * 100 > delta_allowed:
            ctx.f.error("compliance.test01-accuracy",
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

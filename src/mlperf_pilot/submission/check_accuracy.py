"""The accuracy rules of one result, as the official ``accuracy_check.py`` applies them
(accuracy.txt against the targets and upper limits, its hash line, the truncated log,
LoadGen errors, dataset coverage, extra files), plus one rule the official checker lacks:
``mlperf_log_accuracy.json`` must be LoadGen's JSON — complete, or cut by the official
truncation into its first and last 4096 characters of a complete log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.errors import MlperfPilotError
from mlperf_pilot.loadgen.logs import DetailLog, parse_detail
from mlperf_pilot.vocab import Severity

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import ResultChecks

HASH = re.compile(r"^hash=([\w\d]+)$")
VIEWABLE = 4096  # what the official truncation keeps of each end
CUT_MARK = "\n\n...\n\n"  # what it puts between them


def _detail(path: Path) -> DetailLog | None:
    try:
        return parse_detail(path)
    except MlperfPilotError:
        return None


def accuracy_log_problem(path: Path) -> str | None:
    """Why ``path`` is not a LoadGen accuracy log (complete, or officially truncated);
    None when it is one."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    if len(text) == 2 * VIEWABLE + len(CUT_MARK) and \
            text[VIEWABLE:VIEWABLE + len(CUT_MARK)] == CUT_MARK:
        head, tail = text[:VIEWABLE], text[VIEWABLE + len(CUT_MARK):]
        if not head.lstrip().startswith("["):
            return "does not start with LoadGen's JSON list"
        if not tail.rstrip().endswith("]"):
            return "ends before LoadGen closed its JSON list (the log was cut short)"
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        detail = getattr(exc, "msg", str(exc))
        if text.strip() and text.strip()[-1] != "]" and text.lstrip().startswith("["):
            return f"ends before LoadGen closed its JSON list (the log was cut short: {detail})"
        return f"is not JSON ({detail})"
    if not isinstance(data, list) or not all(
            isinstance(e, dict) and "qsl_idx" in e and "data" in e for e in data):
        return "is not LoadGen's list of {qsl_idx, data} entries"
    return None


def check_accuracy(ctx: ResultChecks) -> None:
    rules = ctx.rules
    assert rules is not None
    acc_dir = ctx.scenario_dir / "accuracy"
    log = _detail(acc_dir / "mlperf_log_detail.txt")
    if log is None:
        ctx.f.error("accuracy.missing",
                    f"{ctx.rel(acc_dir / 'mlperf_log_detail.txt')} is missing or unreadable",
                    "copy the accuracy run's logs into accuracy/")
        return
    accuracy_values(ctx, acc_dir / "accuracy.txt", rules)
    acc_json = acc_dir / "mlperf_log_accuracy.json"
    if not acc_json.is_file():
        ctx.f.error("accuracy.log-missing", f"{ctx.rel(acc_json)} is missing",
                    "keep LoadGen's mlperf_log_accuracy.json (truncated) in accuracy/")
    elif acc_json.stat().st_size > ctx.c.common.max_accuracy_log_bytes:
        ctx.f.error("accuracy.truncation", f"{ctx.rel(acc_json)} is not truncated",
                    "run `mlperf-pilot submission generate` (it truncates and adds "
                    "the hash) or the official truncate_accuracy_log.py")
    else:
        problem = accuracy_log_problem(acc_json)
        if problem:
            ctx.f.error("accuracy.log-format", f"{ctx.rel(acc_json)} {problem}",
                        "rerun the accuracy test (and `submission generate`) so the log "
                        "is LoadGen's complete output")
    loadgen_errors(ctx, log)
    if not ctx.c.options.skip_dataset_size_check:
        expected = rules.samples_for(ctx.v.scenario)
        covered = log.get("effective_accuracy_sample_count",
                          log.get("qsl_reported_total_count"))
        if expected is not None and covered is not None and int(covered) != expected:
            ctx.f.error("accuracy.dataset",
                        f"the accuracy run covers {covered} samples, the dataset has "
                        f"{expected}", "run accuracy mode on the whole dataset (no --count)")
    extra_accuracy_files(ctx, acc_dir)


def loadgen_errors(ctx: ResultChecks, log: DetailLog) -> None:
    tolerated = ["Loadgen built with uncommitted changes!"] \
        if ctx.c.options.submission_exceptions else []
    critical = [str(e.value) for e in log.errors
                if not any(t in str(e.value) for t in tolerated)]
    if critical:
        ctx.f.error("accuracy.loadgen-errors",
                    f"the accuracy log has {len(critical)} LoadGen error(s): {critical[0]}",
                    "fix the cause and rerun; logs with errors are not accepted")


def accuracy_values(ctx: ResultChecks, path: Path, rules: Any) -> None:
    """accuracy.txt read as the official checker reads it: every line against every
    target (the last value found counts, a value below its target fails), until every
    target has been met and the hash line seen."""
    if not path.is_file():
        ctx.f.error("accuracy.result-missing", f"{ctx.rel(path)} is missing",
                    "write the accuracy script's output to accuracy/accuracy.txt")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() \
        if path.is_file() else []
    patterns = ctx.c.common.accuracy_patterns
    severity = Severity.WARNING if ctx.open else Severity.ERROR
    targets = [t for t in rules.targets_for(ctx.v.scenario) if patterns.get(t.metric)]
    limits = [u for u in rules.upper_limits_for(ctx.v.scenario) if patterns.get(u.metric)]
    met = [False] * len(targets)
    below: dict[str, tuple[str, float]] = {}
    above: dict[str, tuple[str, float]] = {}
    found: dict[str, str] = {}
    has_hash = False
    for line in lines:
        has_hash = has_hash or bool(HASH.match(line))
        for i, target in enumerate(targets):
            m = re.match(patterns[target.metric], line)
            if not m or not m.group(1):
                continue
            found[target.metric] = m.group(1)
            if float(m.group(1)) >= target.value:
                met[i] = True
            else:
                below[target.metric] = (m.group(1), target.value)
        for limit in limits:
            m = re.match(patterns[limit.metric], line)
            if m and m.group(1) and float(m.group(1)) > limit.value:
                above[limit.metric] = (m.group(1), limit.value)
        if all(met) and has_hash:
            break
    ctx.v.accuracy = found
    for metric_name, (value, bound) in below.items():
        ctx.f.add(severity, "accuracy.target",
                  f"{metric_name} {value} is below the target {bound:g}",
                  "closed division needs the target accuracy; use open otherwise")
    for i, target in enumerate(targets):
        if not met[i] and target.metric not in found:
            ctx.f.add(severity, "accuracy.target",
                      f"accuracy.txt has no {target.metric} value",
                      "append the accuracy script's output to accuracy.txt")
    for metric_name, (value, bound) in above.items():
        ctx.f.add(severity, "accuracy.upper-limit",
                  f"{metric_name} {value} is above the limit {bound:g}",
                  "the output is out of the allowed range")
    if lines and not has_hash:
        ctx.f.add(severity, "accuracy.hash", "accuracy.txt has no hash= line",
                  "truncate the accuracy log (it appends hash=<sha256>)")


def extra_accuracy_files(ctx: ResultChecks, acc_dir: Path) -> None:
    if ctx.c.options.skip_extra_accuracy_files_check:
        return
    needed = ctx.c.common.required_accuracy_files.get(ctx.v.mlperf_model, {})
    wanted = needed.get(ctx.c.rules.round)
    if not wanted:
        return
    missing = []
    for folder, names in wanted.items():
        folder_path = acc_dir / folder
        have = {p.name.split(".")[0] for p in folder_path.iterdir() if p.is_file()} \
            if folder_path.is_dir() else set()
        missing += [f"{folder}/{n}" for n in names if n not in have]
        if "captions" not in have:
            missing.append(f"{folder}/captions.txt")
    if missing:
        ctx.f.error("accuracy.extra-files",
                    f"accuracy/ lacks {len(missing)} required file(s), e.g. {missing[0]}",
                    "include the sample outputs the benchmark requires")

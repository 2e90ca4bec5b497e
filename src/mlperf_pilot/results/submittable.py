"""Whether a result could go into a submission, and why not, in words with units.

LoadGen's verdict (VALID/INVALID) says whether a test met the settings it ran with; a
short ``test``-mode run is VALID and still far from submittable (1.5 s instead of
600 s, 24 samples instead of 1,024). :func:`judge` says what a submission would refuse,
from the record (the settings LoadGen logged, the samples an accuracy run covered) and
what the run knows (:class:`SubmissionFacts`, carried by each job): the execution mode,
the round's benchmark, the full data set's size, the card's accuracy target. The rules
on LoadGen's settings are the checker's own
(:func:`mlperf_pilot.submission.check_performance.settings_shortfalls`), not a copy.

A result judged here as submittable may still be refused by ``submission generate``
for what a single record cannot know (a missing scenario, compliance tests, the system
description); and an unverified model (``model_verified``) is the closed division's
business, not a reason here (the open division takes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from mlperf_pilot.vocab import ExecutionMode, Mode, RunStatus

if TYPE_CHECKING:
    from mlperf_pilot.results.records import RunRecord
    from mlperf_pilot.submission.check_performance import Shortfall


class SubmissionFacts(BaseModel):
    """What a test's record is judged against (resolved in the parent, so the process
    that runs the test never reads the catalog)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    execution_mode: ExecutionMode
    round: str
    benchmark: str | None = None  # the round's benchmark; None: not one of the round's
    dataset_size: int | None = None  # samples in the full data set (None: unknown)
    accuracy_target: float | None = None  # the closed-division target, in percent
    model_verified: bool | None = None  # None: no model file (e.g. the null backend)


_MODE_REASONS = {ExecutionMode.TEST: "test run",
                 ExecutionMode.FIND: "find run (calibration probe)"}
FAILED_REASON, INVALID_REASON = "the test failed", "INVALID"
# the reasons a status line already shows (the execution mode, LoadGen's verdict)
SHOWN_BY_STATUS = frozenset({*_MODE_REASONS.values(), FAILED_REASON, INVALID_REASON})


def judge(record: RunRecord, facts: SubmissionFacts) -> list[str]:
    """Why the record's result is not submittable (empty: nothing a record shows)."""
    reasons: list[str] = []
    if facts.execution_mode in _MODE_REASONS:
        reasons.append(_MODE_REASONS[facts.execution_mode])
    if record.status is RunStatus.FAILED:
        reasons.append(FAILED_REASON)
    elif record.status is RunStatus.INVALID:
        reasons.append(INVALID_REASON)
    if facts.benchmark is None:
        reasons.append(f"{record.mlperf_model} is not a benchmark of round {facts.round}")
    elif record.mode is Mode.PERFORMANCE and record.loadgen is not None:
        reasons.extend(_settings_reasons(record, facts.round, facts.benchmark))
    if record.mode is Mode.ACCURACY and record.accuracy is not None:
        covered, size = record.accuracy.total, facts.dataset_size
        if size is not None and covered < size:
            reasons.append(f"{covered:,} of {size:,} samples")
        if record.accuracy.meets_target is False:
            reasons.append(f"{record.accuracy.metric} {record.accuracy.value:.3f}% below "
                           f"the closed-division target {record.accuracy.target:.3f}%")
    return reasons


def apply(record: RunRecord, facts: SubmissionFacts) -> None:
    """Fill the record's execution mode, model check, accuracy target and
    submittability from the facts."""
    record.execution_mode = facts.execution_mode
    record.model_verified = facts.model_verified
    if record.accuracy is not None and facts.accuracy_target is not None:
        target = round(facts.accuracy_target, 6)
        record.accuracy = record.accuracy.model_copy(update={
            "target": target, "meets_target": record.accuracy.value >= target})
    record.not_submittable = judge(record, facts)
    record.submittable = not record.not_submittable


def _settings_reasons(record: RunRecord, round_name: str, benchmark: str) -> list[str]:
    from mlperf_pilot.submission.check_performance import settings_shortfalls
    from mlperf_pilot.submission.rounds import common, load_round

    assert record.loadgen is not None
    rules = load_round(round_name).models[benchmark]
    settings = record.loadgen.effective_settings
    shortfalls = settings_shortfalls(rules, common(), benchmark, record.scenario.value,
                                     settings.get)
    return [describe(shortfall) for shortfall in shortfalls]


def describe(shortfall: Shortfall) -> str:
    """A broken rule in words with units: ``min duration 1.5 s < 600 s``."""
    found, needed = shortfall.found, shortfall.needed
    if shortfall.setting == "min_duration_ms":
        return f"min duration {_seconds(found)} < {_seconds(needed)}"
    if shortfall.setting == "target_latency_ns":
        return f"latency bound {found / 1e6:g} ms > {needed / 1e6:g} ms"
    if shortfall.setting == "min_query_count":
        return f"min query count {found:,.0f} < {needed:,.0f} queries"
    if shortfall.setting == "samples_per_query":
        return f"{found:,.0f} samples per Offline query < {needed:,.0f}"
    return f"{shortfall.setting} {found:.0f} < {needed:.0f}"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:g} s"


def round_benchmark(round_name: str, benchmark: str) -> str | None:
    """``benchmark`` as the round names it, or None when the round does not have it (or
    the round is unknown)."""
    from mlperf_pilot.errors import UnknownPluginError
    from mlperf_pilot.submission.rounds import load_round

    try:
        rules = load_round(round_name)
    except UnknownPluginError:
        return None
    name = rules.mlperf_model(benchmark)
    return name if name in rules.models else None


__all__ = ["SHOWN_BY_STATUS", "SubmissionFacts", "apply", "describe", "judge", "round_benchmark"]

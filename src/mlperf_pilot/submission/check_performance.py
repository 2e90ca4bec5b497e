"""The performance rules of one result (and of its compliance runs), as the official
``performance_check.py`` applies them: LoadGen errors, equal issue, sample counts, seeds,
latency bounds, query counts, duration, network mode, LLM token latencies, the metric
and inferred results."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from mlperf_pilot.loadgen.logs import DetailLog
from mlperf_pilot.submission.findings import Findings
from mlperf_pilot.submission.rounds import INTERACTIVE, BenchmarkRules, Common
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.submission.check import ResultChecks

# The scenarios below are compared with the names the tree and the logs use (plain
# strings; Scenario members are str enums, so they compare and hash as their words).
EARLY_STOPPING = (Scenario.SERVER, Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM)
LATENCY_SCENARIOS = (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM)  # metric in ns
SERVER_LIKE = (Scenario.SERVER, INTERACTIVE)
INFERABLE = {(Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM),
             (Scenario.MULTI_STREAM, Scenario.OFFLINE),
             (Scenario.SINGLE_STREAM, Scenario.OFFLINE)}


class Shortfall(NamedTuple):
    """One rule on LoadGen's effective settings that a run breaks: the setting (LoadGen's
    name, without ``effective_``), what the run had and what the rules need (a bound:
    ``found > needed`` for ``target_latency_ns``, ``found < needed`` otherwise)."""

    rule: str  # the checker's rule, e.g. "performance.min-duration"
    setting: str  # e.g. "min_duration_ms"
    found: float
    needed: float


def sample_count_shortfall(rules: BenchmarkRules, found: Any) -> Shortfall | None:
    needed = rules.performance_sample_count
    if needed and found is not None and int(found) < needed:
        return Shortfall("performance.sample-count", "performance_sample_count", int(found),
                         needed)
    return None


def duration_shortfall(common: Common, found: Any) -> Shortfall | None:
    if found is not None and int(found) < common.test_duration_ms:
        return Shortfall("performance.min-duration", "min_duration_ms", int(found),
                         common.test_duration_ms)
    return None


def query_count_shortfall(rules: BenchmarkRules, scenario: str, found: Any
                          ) -> Shortfall | None:
    """Only where early stopping does not decide (Offline): the others may stop early."""
    needed = rules.min_queries.get(scenario)
    if scenario not in EARLY_STOPPING and needed and found is not None and \
            int(found) < needed:
        return Shortfall("performance.min-queries", "min_query_count", int(found), needed)
    return None


def offline_samples_shortfall(common: Common, model: str, scenario: str, found: Any, *,
                              closed: bool) -> Shortfall | None:
    minimum = common.offline_min_samples_per_query.get(model)
    if scenario == Scenario.OFFLINE and closed and minimum and found is not None and \
            int(found) < minimum:
        return Shortfall("performance.offline-samples", "samples_per_query", int(found),
                         minimum)
    return None


def latency_bound_excess(rules: BenchmarkRules, scenario: str, found: Any
                         ) -> Shortfall | None:
    """A run's target latency above the benchmark's bound (early-stopping scenarios)."""
    bound = rules.latency_constraint_ns.get(scenario)
    if scenario in EARLY_STOPPING and isinstance(bound, (int, float)) and \
            found is not None and float(found) > bound:
        return Shortfall("performance.latency-bound", "target_latency_ns", float(found),
                         float(bound))
    return None


def settings_shortfalls(rules: BenchmarkRules, common: Common, model: str, scenario: str,
                        setting: Callable[[str], Any], *, closed: bool = True
                        ) -> list[Shortfall]:
    """Every rule on the effective settings a performance run breaks, as
    :func:`check_performance` applies them; ``setting(name)`` is LoadGen's
    ``effective_<name>`` (None when not logged). Used by the checker and by the records
    (``results.submittable``), so the rules are written once."""
    found = [
        sample_count_shortfall(rules, setting("performance_sample_count")),
        duration_shortfall(common, setting("min_duration_ms")),
        query_count_shortfall(rules, scenario, setting("min_query_count")),
        offline_samples_shortfall(common, model, scenario, setting("samples_per_query"),
                                  closed=closed),
        latency_bound_excess(rules, scenario, setting("target_latency_ns")),
    ]
    return [shortfall for shortfall in found if shortfall is not None]


def is_inferred(run_scenario: str, folder_scenario: str) -> bool:
    """Whether the folder's result is inferred from a run of another scenario (an
    Interactive result is a Server run: not inferred). Compared case-insensitively."""
    run, folder = run_scenario.lower(), folder_scenario.lower()
    return run != folder and (run, folder) != (Scenario.SERVER.value.lower(),
                                               INTERACTIVE.lower())


def check_performance(ctx: ResultChecks, log: DetailLog, f: Findings, *,
                      compliance: bool) -> None:
    rules = ctx.rules
    assert rules is not None
    model = ctx.v.mlperf_model
    scenario = str(log.get("effective_scenario", ctx.v.scenario))
    where = "compliance run" if compliance else "performance run"
    loadgen_errors(ctx, log, f, "performance", allow_multiple_conf=compliance)
    # The official checker applies this rule only in some rounds (and there tests the
    # flag the wrong way round); we fail when equal issue is *off*.
    if ctx.c.rules.round in ctx.c.common.equal_issue_rounds and \
            model in ctx.c.common.equal_issue_models and not ctx.open and \
            not log.get("effective_sample_concatenate_permutation"):
        f.error("performance.equal-issue",
                f"{model} needs equal-issue mode (sample_concatenate_permutation)",
                "keep mlperf.conf's sample_concatenate_permutation for this model")
    short = sample_count_shortfall(rules, log.get("effective_performance_sample_count"))
    if short:
        f.error(short.rule,
                f"{where}: performance_sample_count {short.found}, needs >= {short.needed}",
                "do not lower performance_sample_count_override; load the full set")
    for seed, expected in ctx.c.rules.seeds.items():
        value = log.get(f"effective_{seed}")
        if value is not None and int(value) != int(expected):
            f.error("performance.seeds", f"{where}: {seed} is {value}, expected {expected}",
                    f"run with the LoadGen of round {ctx.c.rules.round} (its mlperf.conf "
                    "carries the round's seeds)")
    latency(ctx, log, scenario, f)
    query_counts(ctx, log, scenario, f)
    short = duration_shortfall(ctx.c.common, log.get("effective_min_duration_ms"))
    if short:
        f.error(short.rule,
                f"{where}: min_duration is {short.found} ms, the rules need {short.needed}",
                "run with --execution-mode valid (no min_duration override in user.conf)")
    network_mode(ctx, log, f)
    llm_latencies(ctx, log, scenario, f)
    if log.get("result_validity") == "INVALID" and not compliance:
        f.warning("performance.validity",
                  f"LoadGen judged the {where} INVALID "
                  f"({str(log.get('result_invalid_reason', '')).strip() or 'see summary'})",
                  "fix the targets (calibrate) and rerun")
    if not compliance:
        metric(ctx, log, scenario, f)


def loadgen_errors(ctx: ResultChecks, log: DetailLog, f: Findings, what: str,
                   allow_multiple_conf: bool = False) -> None:
    tolerated = []
    if ctx.c.options.submission_exceptions:
        tolerated.append("Loadgen built with uncommitted changes!")
        if allow_multiple_conf:
            tolerated.append("Multiple conf files are used")
    critical = [str(e.value) for e in log.errors
                if not any(t in str(e.value) for t in tolerated)]
    if critical:
        f.error(f"{what}.loadgen-errors",
                f"the {what} log has {len(critical)} LoadGen error(s): {critical[0]}",
                "fix the cause and rerun; logs with errors are not accepted")


def latency(ctx: ResultChecks, log: DetailLog, scenario: str, f: Findings) -> None:
    rules = ctx.rules
    assert rules is not None
    bound = rules.latency_constraint_ns.get(scenario)
    if scenario in EARLY_STOPPING:
        if not log.get("early_stopping_met"):
            f.error("performance.early-stopping",
                    f"early stopping was not met: "
                    f"{str(log.get('early_stopping_result', '')).strip()}",
                    "run more queries (longer min duration) or lower the target")
            return
        effective = log.get("effective_target_latency_ns")
        if latency_bound_excess(rules, scenario, effective):
            f.error("performance.latency-bound",
                    f"the run's latency bound {effective} ns exceeds the benchmark's "
                    f"{bound} ns", "do not raise target_latency above the rules' bound")
    elif isinstance(bound, (int, float)):
        p99 = log.get("result_99.00_percentile_latency_ns")
        if p99 is not None and float(p99) > bound:
            f.error("performance.latency-bound",
                    f"99th percentile latency {p99} ns exceeds {bound} ns",
                    "lower the load or the batch size")


def query_counts(ctx: ResultChecks, log: DetailLog, scenario: str, f: Findings) -> None:
    rules = ctx.rules
    assert rules is not None
    short = query_count_shortfall(rules, scenario, log.get("effective_min_query_count"))
    if short:
        f.error(short.rule, f"min_query_count is {short.found}, the rules need {short.needed}",
                "do not override min_query_count in user.conf for valid runs")
    short = offline_samples_shortfall(ctx.c.common, ctx.v.mlperf_model, scenario,
                                      log.get("effective_samples_per_query"),
                                      closed=ctx.v.division == "closed")
    if short:
        f.error(short.rule,
                f"Offline issued {short.found} samples per query, the rules need "
                f"{short.needed}",
                "raise target_qps so the query holds at least that many samples")


def network_mode(ctx: ResultChecks, log: DetailLog, f: Findings) -> None:
    system = ctx.v.system_json
    if system is None:
        f.error("performance.system-json", "the system description JSON is missing",
                "write systems/<system>.json (mlperf-pilot system)")
        return
    is_network = str(system.get("is_network", "false")).lower() == "true"
    expected = {"network": True, "closed": False}.get(ctx.v.division)
    if expected is not None and expected != is_network:
        f.error("performance.network-mode",
                f"is_network={is_network} does not fit the {ctx.v.division} division",
                "set is_network to true only for network-division systems")
    substring = ctx.c.common.network_sut_name_substring
    if is_network and substring not in str(log.get("sut_name", "")):
        f.error("performance.network-sut-name",
                f"a network-mode SUT name must contain {substring!r}",
                "rename the SUT")


def llm_latencies(ctx: ResultChecks, log: DetailLog, scenario: str, f: Findings) -> None:
    """LLM benchmarks need LoadGen's token latencies; Server runs (an Interactive result
    is a Server run, judged by the Server bounds as the official checker does) must keep
    the 99th-percentile TTFT and TPOT under the benchmark's bounds."""
    model = ctx.v.mlperf_model
    if model not in ctx.c.common.llm_models:
        return
    if not log.get("requested_use_token_latencies"):
        f.error("performance.token-latencies",
                f"{model} is an LLM benchmark but the run did not use token latencies",
                "set use_token_latencies (LoadGen reports tokens/s and TTFT/TPOT then)")
        return
    if scenario not in SERVER_LIKE:
        return
    limits = ctx.c.common.llm_latency_limits.get(model, {}).get(scenario)
    if limits is None:
        f.error("performance.token-latencies",
                f"no TTFT/TPOT bounds are known for {model} {scenario}",
                "submit the scenarios the benchmark defines")
        return
    ttft = log.get("result_first_token_99.00_percentile_latency_ns")
    tpot = log.get("result_time_per_output_token_99.00_percentile_ns")
    if ttft is None or tpot is None:
        f.error("performance.token-latencies", "the log has no TTFT/TPOT percentiles",
                "run with use_token_latencies so LoadGen reports them")
    elif not (float(ttft) < limits["ttft"] and float(tpot) < limits["tpot"]):
        f.error("performance.token-latencies",
                f"99th percentile TTFT {ttft} ns / TPOT {tpot} ns, the bounds are "
                f"{limits['ttft']} / {limits['tpot']} ns", "lower the load (target_qps)")


def metric(ctx: ResultChecks, log: DetailLog, scenario: str, f: Findings) -> None:
    fixed = ctx.v.scenario
    field_name = ctx.c.rules.result_field(ctx.v.mlperf_model, scenario)
    value = log.get(field_name) if field_name else None
    if value is None:
        f.error("performance.metric", f"the log has no {field_name}",
                "the run did not finish; rerun it")
        return
    result = float(value)
    if scenario in LATENCY_SCENARIOS:
        result /= 1e6
    ctx.v.run_scenario = scenario
    if is_inferred(scenario, fixed):
        ctx.v.inferred = True
        result = inferred(ctx, log, scenario, fixed, result, f)
    ctx.v.metric = result


def inferred(ctx: ResultChecks, log: DetailLog, scenario: str, fixed: str, result: float,
             f: Findings) -> float:
    system_type = str((ctx.v.system_json or {}).get("system_type", "")).lower()
    if "edge" not in system_type:
        f.error("performance.inferred",
                f"{fixed} cannot be inferred from {scenario} for a {system_type} system",
                "run the scenario itself")
        return result
    if (scenario, fixed) not in INFERABLE:
        f.error("performance.inferred", f"{fixed} cannot be inferred from {scenario}",
                "only SingleStream->MultiStream/Offline and MultiStream->Offline are allowed")
        return result
    if fixed == Scenario.OFFLINE and scenario == Scenario.SINGLE_STREAM:
        return float(log.get("result_qps_without_loadgen_overhead", 0.0))
    if fixed == Scenario.OFFLINE:
        spq = float(log.get("effective_samples_per_query", 8))
        mean_ms = float(log.get("result_mean_query_latency_ns", 0.0)) / 1e6
        return spq * 1000.0 / mean_ms if mean_ms else 0.0
    latency_ms = float(log.get("early_stopping_latency_ms", 0.0))
    if latency_ms == 0:
        f.error("performance.inferred",
                "not enough samples for an early-stopping estimate to infer MultiStream",
                "run longer")
    return latency_ms * 8 / 1e6

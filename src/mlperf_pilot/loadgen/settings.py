"""LoadGen settings: the per-run user.conf and the TestSettings built from it.

mlperf.conf (inside the LoadGen wheel) is never touched. Everything a run changes is
written as ``<model>.<Scenario>.<key> = <value>`` lines into a user.conf next to the
results, loaded with exactly one ``TestSettings.FromConfig`` call (which loads
mlperf.conf first), so the file is the whole record of what was overridden.

Test runs (``execution_mode: test``) shorten the minimum duration and, where no target
is given, use targets estimated from a warm-up on this machine, padded so that the run
lasts at least the minimum duration. They also pick what the machine can meet: a Server
latency bound derived from the warm-up for a demo or open model (``derive_server_bound``;
an official model keeps its bound), and fewer samples per MultiStream query when 662
queries of 8 would take long (662 is the least LoadGen's early stopping accepts). Valid
runs keep mlperf.conf's durations, query counts and bounds and only set targets;
``server_bound_fits`` tells whether a bound is within physical reach at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_pilot.config import ExecutionMode, LoadGenOverrides, Mode, RunSpec, Scenario
from mlperf_pilot.errors import ConfigError, LoadGenError

# Offline in test mode: ask LoadGen for this much more work than the estimate says the
# minimum duration needs, so a run on a machine faster than the warm-up suggested still
# lasts long enough to be VALID.
OFFLINE_TEST_PADDING = 1.5
# SingleStream/MultiStream expected latency in test mode: claim to be this much faster
# than measured so LoadGen generates enough queries to fill the duration.
LATENCY_TEST_FACTOR = 0.5
# Server without --target-qps: this fraction of the one-sample-at-a-time rate, low enough
# that queueing stays well inside the latency bound on a noisy machine.
SERVER_TEST_FRACTION = 0.3
# What one query costs the harness itself (LoadGen issue, queue hand-off, completion),
# measured with the null backend on 2 cores: about 0.12 ms per SingleStream round trip.
HARNESS_MS_PER_QUERY = 0.2
# Server's early stopping (99th percentile, 99% confidence) needs at least 459 queries
# with none over the bound and 662 with one; short test runs ask for the latter.
SERVER_TEST_MIN_QUERIES = 662
# Server in test mode with a bound derived from the warm-up (demo/open models): the bound
# is this many full batches (a query can arrive behind a batch on its worker and wait in
# the queue; early stopping over 662 queries allows only one query past the bound, so the
# bound must hold the slowest queries of a shared machine), never under the floor. The
# bound leaves room for a higher load than SERVER_TEST_FRACTION, so the 662 queries take
# less time.
SERVER_TEST_BOUND_BATCHES = 4
SERVER_TEST_BOUND_FLOOR_MS = 100
SERVER_TEST_DERIVED_FRACTION = 0.5
# A Server bound shorter than this many batch-1 inferences (as the warm-up measured them,
# with every core; a Server worker has fewer) cannot be met at the 99th percentile at any
# useful load: valid mode refuses it, test mode says so, the bench skips it.
SERVER_BOUND_MIN_INFERENCES = 2.0
# MultiStream: mlperf.conf's 8 samples per query and LoadGen's 662-query minimum for the
# early-stopping estimate (fewer queries are INVALID). In test mode the samples per query
# are halved until the 662 queries fit in this budget by the warm-up's estimate.
MULTISTREAM_SAMPLES_PER_QUERY = 8
MULTISTREAM_MIN_QUERIES = 662
MULTISTREAM_TEST_BUDGET_MS = 15_000


@dataclass(frozen=True)
class Estimates:
    """What a warm-up measured on this machine."""

    latency_ms: float  # one sample, batch 1
    batch_latency_ms: float  # one batch of max_batch_size samples
    max_batch_size: int

    @property
    def offline_qps(self) -> float:
        return 1000.0 * self.max_batch_size / max(self.batch_latency_ms, 1e-6)

    @property
    def single_sample_qps(self) -> float:
        return min(self.offline_qps, 1000.0 / (self.latency_ms + HARNESS_MS_PER_QUERY))

    def batch_ms(self, samples: int) -> float:
        """One batch of ``samples`` (up to max_batch_size), interpolated between the
        batch-1 and the full-batch measurements."""
        if samples >= self.max_batch_size or self.max_batch_size <= 1:
            return self.batch_latency_ms
        share = (max(samples, 1) - 1) / (self.max_batch_size - 1)
        return self.latency_ms + share * (self.batch_latency_ms - self.latency_ms)

    def multistream_latency_ms(self, samples_per_query: int) -> float:
        full, rest = divmod(samples_per_query, self.max_batch_size)
        return full * self.batch_latency_ms + (self.batch_ms(rest) if rest else 0.0)

    @property
    def server_test_bound_ms(self) -> int:
        """The Server latency bound a test run of a demo/open model uses (whole ms)."""
        bound = SERVER_TEST_BOUND_BATCHES * self.batch_latency_ms
        return max(SERVER_TEST_BOUND_FLOOR_MS, math.ceil(bound))

    def multistream_test_samples(self) -> int:
        """Samples per MultiStream query in a test run: mlperf.conf's 8, halved until
        LoadGen's 662 queries fit in MULTISTREAM_TEST_BUDGET_MS."""
        samples = MULTISTREAM_SAMPLES_PER_QUERY
        while samples > 1 and (MULTISTREAM_MIN_QUERIES * self.multistream_latency_ms(samples)
                               > MULTISTREAM_TEST_BUDGET_MS):
            samples //= 2
        return samples


def server_bound_fits(bound_ms: float, latency_ms: float) -> bool:
    """Whether a Server latency bound is within reach of a machine whose batch-1
    inference takes ``latency_ms``: at least SERVER_BOUND_MIN_INFERENCES of them."""
    return bound_ms >= SERVER_BOUND_MIN_INFERENCES * latency_ms


# LoadGen parses these keys with strtoull: they must be written as whole numbers
# (Server's target_latency is in whole milliseconds).
INTEGER_KEYS = frozenset({
    "min_duration", "max_duration", "min_query_count", "max_query_count",
    "performance_sample_count_override", "samples_per_query", "max_async_queries",
})


def format_value(scenario: Scenario, key: str, value: float | int) -> str:
    """A value as LoadGen's config parser needs it."""
    whole = key in INTEGER_KEYS or (key == "target_latency" and scenario is Scenario.SERVER)
    if whole:
        return str(int(value))
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def user_conf_settings(
    spec: RunSpec, scenario: Scenario, *, performance_sample_count: int, dataset_count: int,
    estimates: Estimates | None, calibrated: Mapping[str, Any] | None = None,
    derive_server_bound: bool = False,
) -> dict[str, float | int]:
    """The user.conf keys (without the model.scenario prefix) for one scenario.

    Targets: explicit overrides win, then ``calibrated`` ones (a targets file), then
    the warm-up estimates. ``derive_server_bound`` (a demo or open model): a test run's
    Server bound comes from the warm-up instead of mlperf.conf."""
    o: LoadGenOverrides = spec.loadgen
    if calibrated:
        o = o.model_copy(update={k: v for k, v in calibrated.items()
                                 if k in ("target_qps", "target_latency_ms")
                                 and getattr(o, k) is None})
    test = spec.execution_mode is not ExecutionMode.VALID
    keys: dict[str, float | int] = {}

    # the performance sample set cannot be larger than the data we have
    psc = o.performance_sample_count or (
        dataset_count if dataset_count < performance_sample_count else None
    )
    if psc:
        keys["performance_sample_count_override"] = psc

    duration = o.min_duration_ms if o.min_duration_ms is not None else (
        spec.test_duration_ms if test else None
    )
    if duration is not None:
        keys["min_duration"] = duration
    if o.max_duration_ms is not None:
        keys["max_duration"] = o.max_duration_ms

    if scenario is Scenario.OFFLINE:
        qps = o.target_qps or (
            estimates.offline_qps * (OFFLINE_TEST_PADDING if test else 1.0) if estimates else None
        )
        if qps:
            keys["target_qps"] = qps
        if o.min_query_count is not None:
            keys["min_query_count"] = o.min_query_count
        elif test:
            keys["min_query_count"] = 1  # the samples come from target_qps x duration
    elif scenario is Scenario.SERVER:
        derived = (test and derive_server_bound and estimates is not None
                   and o.target_latency_ms is None)
        fraction = SERVER_TEST_DERIVED_FRACTION if derived else SERVER_TEST_FRACTION
        qps = o.target_qps or (
            estimates.single_sample_qps * fraction if estimates else None
        )
        if qps:
            keys["target_qps"] = qps
        if o.target_latency_ms is not None:
            if not float(o.target_latency_ms).is_integer():
                raise ConfigError(
                    f"Server latency bound {o.target_latency_ms} ms is not a whole number",
                    hint="LoadGen reads Server target_latency in whole milliseconds",
                )
            keys["target_latency"] = int(o.target_latency_ms)
        elif derived and estimates is not None:
            keys["target_latency"] = estimates.server_test_bound_ms
        if o.min_query_count is not None:
            keys["min_query_count"] = o.min_query_count
        elif test:
            keys["min_query_count"] = SERVER_TEST_MIN_QUERIES
        if o.max_async_queries is not None:
            keys["max_async_queries"] = o.max_async_queries
    else:
        spq = o.samples_per_query or MULTISTREAM_SAMPLES_PER_QUERY
        if scenario is Scenario.MULTI_STREAM:
            if o.samples_per_query is None and test and estimates is not None:
                spq = estimates.multistream_test_samples()
            if o.samples_per_query is not None or spq != MULTISTREAM_SAMPLES_PER_QUERY:
                keys["samples_per_query"] = spq
        latency = o.target_latency_ms
        if latency is None and estimates is not None:
            measured = (
                estimates.latency_ms if scenario is Scenario.SINGLE_STREAM
                else estimates.multistream_latency_ms(spq)
            )
            latency = measured * (LATENCY_TEST_FACTOR if test else 1.0)
        if latency is not None:
            keys["target_latency"] = max(latency, 0.001)
        if o.min_query_count is not None:
            keys["min_query_count"] = o.min_query_count
    if o.max_query_count is not None:
        keys["max_query_count"] = o.max_query_count
    return keys


def render_user_conf(model: str, scenario: Scenario, keys: dict[str, float | int],
                     header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines += [
        f"{model}.{scenario.value}.{key} = {format_value(scenario, key, value)}"
        for key, value in keys.items()
    ]
    return "\n".join(lines) + "\n"


def make_test_settings(user_conf: Path, model: str, scenario: Scenario, mode: Mode) -> Any:
    """TestSettings from mlperf.conf + ``user_conf`` (one FromConfig call)."""
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    status = settings.FromConfig(str(user_conf), model, scenario.value)
    if status != 0:
        raise LoadGenError(
            f"LoadGen rejected {user_conf} (FromConfig returned {status})",
            hint="check the key names and values in that file",
        )
    settings.scenario = getattr(lg.TestScenario, scenario.value)
    settings.mode = (
        lg.TestMode.AccuracyOnly if mode is Mode.ACCURACY else lg.TestMode.PerformanceOnly
    )
    return settings

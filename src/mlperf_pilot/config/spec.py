"""RunSpec: everything that decides how one ``mlperf-pilot run`` behaves.

A RunSpec says how a benchmark is *run*; what a model *is* lives in its catalog card
(as LoadGen separates user.conf from mlperf.conf). Every model is frozen and forbids
unknown keys, so a typo is an error, never ignored. The resolved RunSpec is saved next
to every result. The layers it is built from: :mod:`mlperf_pilot.config.layering`; the
SUT's settings: :mod:`mlperf_pilot.config.sut`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from mlperf_pilot.config.sut import LocalSutConfig, SutConfig, lift_legacy_keys, parse_sut
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.submission.rounds import DEFAULT_ROUND
from mlperf_pilot.vocab import ALL_SCENARIOS, COMPLIANCE_TESTS, ExecutionMode, Mode, Scenario

# Bounds that keep every number meaningful to LoadGen and representable where it goes
# (LoadGen keeps durations as int64 nanoseconds and counts as uint64): no value a user
# can type ends in an OverflowError or a run that measures nothing.
MIN_DURATION_MS = 100  # shorter runs measure nothing (0: one query, and LoadGen says VALID)
MAX_DURATION_MS = 10**12  # about 31 years; x 1e6 still fits LoadGen's int64 nanoseconds
MAX_COUNT = 2**63 - 1
MAX_QPS = 1e9
MIN_QPS = 1e-3
MAX_LATENCY_MS = 1e9
MAX_RERUNS = 100


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class LoadGenOverrides(_Frozen):
    """LoadGen settings a run may override; written into the per-run user.conf.

    Units are in the names. ``None`` means "leave it to mlperf.conf" (valid runs) or
    "use the test default / the warm-up estimate" (test runs).
    """

    min_duration_ms: int | None = Field(default=None, ge=MIN_DURATION_MS, le=MAX_DURATION_MS)
    max_duration_ms: int | None = Field(default=None, ge=0, le=MAX_DURATION_MS)
    target_qps: float | None = Field(default=None, ge=MIN_QPS, le=MAX_QPS, allow_inf_nan=False)
    target_latency_ms: float | None = Field(default=None, gt=0, le=MAX_LATENCY_MS,
                                            allow_inf_nan=False)
    min_query_count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_query_count: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    samples_per_query: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    performance_sample_count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_async_queries: int | None = Field(default=None, ge=0, le=MAX_COUNT)


class RunSpec(_Frozen):
    """Everything that decides how one ``mlperf-pilot run`` behaves."""

    model: str = "efficientnet-lite0-demo"
    # the system under test: its kind and what belongs to that kind (config.sut)
    sut: SerializeAsAny[SutConfig] = Field(default_factory=LocalSutConfig)
    # whether a download that nothing verifies is accepted
    allow_unverified_download: bool = False
    dataset: str | None = None  # None = the card's dataset
    dataset_path: Path | None = None
    scenarios: tuple[Scenario, ...] = (Scenario.OFFLINE,)
    modes: tuple[Mode, ...] = (Mode.ACCURACY, Mode.PERFORMANCE)
    execution_mode: ExecutionMode = ExecutionMode.TEST
    # more than the data set has: all of it (the run notes the cap)
    count: int | None = Field(default=None, ge=1)
    test_duration_ms: int = Field(default=10_000, ge=MIN_DURATION_MS, le=MAX_DURATION_MS)
    loadgen: LoadGenOverrides = LoadGenOverrides()
    results_dir: Path = Path("results")
    # the results store (results.store); None: $MLPERF_PILOT_STORE, else
    # <results_dir>/results.sqlite
    store: Path | None = None
    system_name: str | None = None  # None = the SUT's, e.g. "<backend>-<device>"
    cache_dir: Path | None = None
    preprocess_workers: int = Field(default=0, ge=0)  # 0 = number of usable cores
    # calibration targets (default ./mlperf-pilot-targets.yaml) and automatic reruns
    targets_file: Path | None = None
    max_reruns: int = Field(default=1, ge=0, le=MAX_RERUNS)
    # the MLPerf round whose rules apply (compliance tests, submission layout)
    round: str = DEFAULT_ROUND
    # run the round's compliance tests after each scenario's runs
    compliance: bool = False
    # the tests to run (default: those the round requires for the benchmark)
    compliance_tests: tuple[str, ...] | None = None
    # keep LoadGen's trace (mlperf_log_trace.json: each sample's scheduled and completion
    # times) of performance tests, for the report's latency distribution and QPS over time
    trace: bool = False

    @field_validator("scenarios", mode="before")
    @classmethod
    def _scenarios(cls, value: Any) -> Any:
        return _parse_list(value, _scenario_items)

    @field_validator("modes", mode="before")
    @classmethod
    def _modes(cls, value: Any) -> Any:
        return _parse_list(value, _mode_items)

    @field_validator("compliance_tests", mode="before")
    @classmethod
    def _compliance_tests(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            tests = tuple(v.strip().upper() for v in value)
            unknown = [t for t in tests if t not in COMPLIANCE_TESTS]
            if unknown:
                raise ValueError(f"unknown compliance test {unknown[0]} "
                                 f"({', '.join(COMPLIANCE_TESTS)})")
            return tests
        return value

    @model_validator(mode="before")
    @classmethod
    def _legacy_flat_keys(cls, value: Any) -> Any:
        return lift_legacy_keys(value) if isinstance(value, Mapping) else value

    @field_validator("sut", mode="before")
    @classmethod
    def _sut_of_kind(cls, value: Any) -> Any:
        return parse_sut(value)

    @field_validator("system_name")
    @classmethod
    def _system_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value.startswith(".")):
            raise ValueError("must be a non-empty name without '/' and not starting with '.'")
        return value

    @model_validator(mode="after")
    def _something_to_run(self) -> RunSpec:
        if not self.scenarios:
            raise ConfigError(
                "no scenario to run (the scenarios list is empty)",
                hint="give --scenario Offline (SingleStream, MultiStream, Server or all), "
                "or leave it out for the model's default",
            )
        # `mlperf-pilot compliance` runs no accuracy/performance test (modes=[]), and
        # find mode always measures performance
        if not self.modes and not self.compliance and \
                self.execution_mode is not ExecutionMode.FIND:
            raise ConfigError(
                "no mode to run (the modes list is empty)",
                hint="give --mode accuracy, performance or both, or leave it out (both); "
                "`mlperf-pilot compliance` runs only the compliance tests",
            )
        return self

    @property
    def local(self) -> LocalSutConfig | None:
        """The local SUT's settings, or None for another kind."""
        return self.sut if isinstance(self.sut, LocalSutConfig) else None

    def resolved_system_name(self, default: str | None = None) -> str:
        """``system_name``, else ``default`` (the plan's, with the backend resolved),
        else the SUT config's."""
        return self.system_name or default or self.sut.default_system_name()


def _parse_list(value: Any, expand: Any) -> Any:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        for item in value:
            if isinstance(item, str):
                for part in item.split(","):
                    if part.strip():
                        items.extend(expand(part))
            else:
                items.append(item)
        # keep order, drop duplicates
        return tuple(dict.fromkeys(items))
    return value


def _scenario_items(text: str) -> list[Scenario]:
    if text.strip().lower() == "all":
        return list(ALL_SCENARIOS)
    return [Scenario.parse(text)]


def _mode_items(text: str) -> list[Mode]:
    if text.strip().lower() in {"both", "all"}:
        return [Mode.ACCURACY, Mode.PERFORMANCE]
    return [Mode.parse(text)]

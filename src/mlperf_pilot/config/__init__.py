"""The one configuration schema (RunSpec and the SUT configs) and its layering."""

from mlperf_pilot.config.layering import (
    build_run_spec,
    cache_dir_for,
    config_error_from,
    deep_merge,
    default_cache_dir,
    load_config_file,
    parse_set_option,
)
from mlperf_pilot.config.spec import (
    MAX_COUNT,
    MAX_DURATION_MS,
    MAX_LATENCY_MS,
    MAX_QPS,
    MAX_RERUNS,
    MIN_DURATION_MS,
    MIN_QPS,
    LoadGenOverrides,
    RunSpec,
)
from mlperf_pilot.config.sut import (
    LEGACY_SUT_KEYS,
    MAX_BATCH_TIMEOUT_US,
    LocalSutConfig,
    OipSutConfig,
    SutConfig,
    lift_legacy_keys,
    sut_config_class,
)
from mlperf_pilot.vocab import ALL_SCENARIOS, Device, ExecutionMode, Mode, Scenario

__all__ = [
    "ALL_SCENARIOS", "LEGACY_SUT_KEYS", "MAX_BATCH_TIMEOUT_US", "MAX_COUNT", "MAX_DURATION_MS",
    "MAX_LATENCY_MS", "MAX_QPS", "MAX_RERUNS", "MIN_DURATION_MS", "MIN_QPS", "Device",
    "ExecutionMode", "LoadGenOverrides", "LocalSutConfig", "Mode", "OipSutConfig", "RunSpec",
    "Scenario", "SutConfig", "build_run_spec", "cache_dir_for", "config_error_from", "deep_merge",
    "default_cache_dir", "lift_legacy_keys", "load_config_file", "parse_set_option",
    "sut_config_class",
]

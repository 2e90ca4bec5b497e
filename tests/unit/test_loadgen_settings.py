from __future__ import annotations

import pytest

from mlperf_pilot.config import RunSpec, Scenario
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.loadgen.settings import (
    Estimates,
    format_value,
    render_user_conf,
    server_bound_fits,
    user_conf_settings,
)

EST = Estimates(latency_ms=4.0, batch_latency_ms=16.0, max_batch_size=8)  # 500 samples/s


def keys(scenario: Scenario, **spec: object) -> dict[str, float | int]:
    return user_conf_settings(RunSpec(**spec), scenario, performance_sample_count=1024,
                              dataset_count=5000, estimates=EST)


def test_test_mode_pads_the_estimates_so_runs_last_their_duration() -> None:
    offline = keys(Scenario.OFFLINE, test_duration_ms=2000)
    assert offline == {"min_duration": 2000, "target_qps": 750.0, "min_query_count": 1}
    single = keys(Scenario.SINGLE_STREAM)
    assert single["target_latency"] == 2.0
    multi = keys(Scenario.MULTI_STREAM)
    assert multi["target_latency"] == 8.0  # one batch of 8 samples, halved
    server = keys(Scenario.SERVER)
    assert server["target_qps"] == pytest.approx(0.3 * 1000 / 4.2)  # 4 ms + harness
    assert "target_latency" not in server and server["min_query_count"] == 662


def test_valid_mode_keeps_mlperf_conf_durations() -> None:
    offline = keys(Scenario.OFFLINE, execution_mode="valid")
    assert offline == {"target_qps": 500.0}


def test_explicit_overrides_win() -> None:
    got = keys(Scenario.SERVER, loadgen={"target_qps": 42.0, "target_latency_ms": 20,
                                         "min_duration_ms": 100, "max_query_count": 10})
    assert got == {"min_duration": 100, "target_qps": 42.0, "target_latency": 20,
                   "min_query_count": 662, "max_query_count": 10}


def test_a_small_dataset_caps_the_performance_sample_count() -> None:
    got = user_conf_settings(RunSpec(), Scenario.OFFLINE, performance_sample_count=1024,
                             dataset_count=15, estimates=EST)
    assert got["performance_sample_count_override"] == 15


def test_server_latency_must_be_whole_milliseconds() -> None:
    with pytest.raises(ConfigError, match="whole"):
        keys(Scenario.SERVER, loadgen={"target_latency_ms": 2.5})


def test_values_are_written_as_loadgens_parser_needs_them() -> None:
    assert format_value(Scenario.OFFLINE, "min_duration", 1500.0) == "1500"
    assert format_value(Scenario.OFFLINE, "target_qps", 1234.5) == "1234.5"
    assert format_value(Scenario.SINGLE_STREAM, "target_latency", 0.0025) == "0.0025"
    assert format_value(Scenario.SERVER, "target_latency", 15.0) == "15"
    text = render_user_conf("resnet50", Scenario.OFFLINE, {"target_qps": 2.0}, "hello")
    assert text == "# hello\nresnet50.Offline.target_qps = 2\n"


# --- what a test run chooses for this machine (issue 13) --------------------------------

SLOW = Estimates(latency_ms=13.0, batch_latency_ms=105.0, max_batch_size=8)  # demo, busy VM


def test_a_demo_test_run_derives_its_server_bound_from_the_warm_up() -> None:
    got = user_conf_settings(RunSpec(), Scenario.SERVER, performance_sample_count=1024,
                             dataset_count=5000, estimates=SLOW, derive_server_bound=True)
    assert got["target_latency"] == SLOW.server_test_bound_ms == 420  # 4 full batches
    assert got["target_qps"] == pytest.approx(0.5 * 1000 / 13.2)
    # a fast model still gets room for a shared machine's hiccups
    assert EST.server_test_bound_ms == 100
    # valid mode, an official model, or a bound given: the bound is not derived
    for spec, derive in ((RunSpec(execution_mode="valid"), True), (RunSpec(), False),
                         (RunSpec(loadgen={"target_latency_ms": 50}), True)):
        keys_ = user_conf_settings(spec, Scenario.SERVER, performance_sample_count=1024,
                                   dataset_count=5000, estimates=SLOW,
                                   derive_server_bound=derive)
        assert keys_.get("target_latency") in (None, 50)


def test_multistream_test_runs_shrink_the_query_not_the_query_count() -> None:
    # 662 queries of 8 samples at 80 ms would take 53 s: halved until they fit in 15 s
    demo = Estimates(latency_ms=10.0, batch_latency_ms=80.0, max_batch_size=8)
    assert demo.multistream_latency_ms(2) == pytest.approx(20.0)  # between batch 1 and 8
    assert demo.multistream_test_samples() == 2  # 662 x 20 ms; 4 samples: 662 x 40 ms
    assert SLOW.multistream_test_samples() == 1
    assert EST.multistream_test_samples() == 8  # 662 x 16 ms: mlperf.conf's 8 fit
    got = user_conf_settings(RunSpec(), Scenario.MULTI_STREAM, performance_sample_count=1024,
                             dataset_count=5000, estimates=demo)
    assert got["samples_per_query"] == 2 and "min_query_count" not in got
    assert got["target_latency"] == pytest.approx(0.5 * 20.0)
    # valid mode keeps mlperf.conf's 8; a value given wins
    valid = user_conf_settings(RunSpec(execution_mode="valid"), Scenario.MULTI_STREAM,
                               performance_sample_count=1024, dataset_count=5000,
                               estimates=SLOW)
    assert "samples_per_query" not in valid
    assert keys(Scenario.MULTI_STREAM, loadgen={"samples_per_query": 4})["samples_per_query"] == 4


def test_a_server_bound_needs_room_for_two_inferences() -> None:
    assert server_bound_fits(15, 7.5) and not server_bound_fits(15, 7.6)
    assert not server_bound_fits(15, 30.8)  # resnet50 on the 2-core VM

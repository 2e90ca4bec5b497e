"""UserConf.check: before any LoadGen run, what a test run chose for this machine (notes)
and a Server bound out of its reach (refused in valid and find mode, noted in test mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_pilot.config import RunSpec, Scenario
from mlperf_pilot.engine.plan import plan_run
from mlperf_pilot.engine.scenario_files import UserConf
from mlperf_pilot.errors import ConfigError, UnreachableTargetError
from mlperf_pilot.loadgen.settings import Estimates

# one batch-1 ResNet-50 inference on the 2-core VM: twice resnet50's 15 ms bound
RESNET = Estimates(latency_ms=30.8, batch_latency_ms=215.0, max_batch_size=8)
DEMO = Estimates(latency_ms=10.0, batch_latency_ms=80.0, max_batch_size=8)
FAST = Estimates(latency_ms=4.0, batch_latency_ms=16.0, max_batch_size=8)


def conf(tmp_path: Path, estimates: Estimates, **spec: object) -> UserConf:
    plan = plan_run(RunSpec(results_dir=tmp_path / "results", **spec))
    return UserConf(plan, dataset_count=50, estimates=estimates)


@pytest.mark.parametrize("mode", ["valid", "find"])
def test_an_official_bound_out_of_reach_is_refused_up_front(tmp_path: Path, mode: str) -> None:
    with pytest.raises(UnreachableTargetError) as caught:
        conf(tmp_path, RESNET, model="resnet50", execution_mode=mode).check(
            [Scenario.OFFLINE, Scenario.SERVER])
    error = caught.value
    assert isinstance(error, ConfigError) and error.exit_code == 2
    assert error.message.startswith("Server latency bound 15 ms is out of reach")
    assert "30.8 ms" in error.message
    assert "--scenario Offline,SingleStream,MultiStream" in error.hint
    # within reach: nothing to say in valid mode
    assert conf(tmp_path, FAST, model="resnet50", execution_mode=mode).check(
        [Scenario.SERVER]) == []


def test_a_test_run_says_what_it_chose_and_what_cannot_pass(tmp_path: Path) -> None:
    (official,) = conf(tmp_path, RESNET, model="resnet50").check([Scenario.SERVER])
    assert "out of reach" in official and "cannot be VALID" in official
    server, multi = conf(tmp_path, DEMO, model="efficientnet-lite0-demo").check(
        [Scenario.SERVER, Scenario.MULTI_STREAM, Scenario.OFFLINE])
    assert server.startswith("Server: latency bound 320 ms for this test run (4 x the "
                             "warm-up's 80 ms per batch of 8")
    assert "valid mode keeps resnet50's 15 ms" in server
    assert multi.startswith("MultiStream: 2 sample(s) per query for this test run, not 8")
    assert "662 queries" in multi

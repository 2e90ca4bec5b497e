from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_pilot.config import (
    ALL_SCENARIOS,
    Device,
    LocalSutConfig,
    Mode,
    RunSpec,
    Scenario,
    build_run_spec,
    load_config_file,
    parse_set_option,
)
from mlperf_pilot.engine import resolve_spec
from mlperf_pilot.errors import EXIT_USAGE, ConfigError, UnknownPluginError


def test_scenarios_accept_all_lists_and_any_case() -> None:
    assert RunSpec(scenarios="all").scenarios == ALL_SCENARIOS
    spec = RunSpec(scenarios=["offline", "single-stream", "Offline"])
    assert spec.scenarios == (Scenario.OFFLINE, Scenario.SINGLE_STREAM)
    assert RunSpec(scenarios="Server,MultiStream").scenarios == (
        Scenario.SERVER, Scenario.MULTI_STREAM)


def test_modes_both_and_device_gpu_alias() -> None:
    spec = RunSpec(modes="both", device="gpu")
    assert spec.modes == (Mode.ACCURACY, Mode.PERFORMANCE)
    assert spec.sut.device is Device.CUDA


def test_unknown_scenario_is_a_config_error_with_the_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        RunSpec(scenarios=["Offlin"])
    assert "Offlin" in info.value.message
    assert "SingleStream" in (info.value.hint or "")
    assert info.value.exit_code == EXIT_USAGE


def test_set_option_reaches_nested_fields_and_parses_values() -> None:
    assert parse_set_option("sut.max_batch_size=16") == {"sut": {"max_batch_size": 16}}
    assert parse_set_option("loadgen.target_qps=2.5") == {"loadgen": {"target_qps": 2.5}}
    assert parse_set_option("scenarios=[Offline, Server]") == {"scenarios": ["Offline", "Server"]}


def test_set_option_rejects_unknown_keys_listing_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_set_option("sut.max_batch=4")
    assert "sut.max_batch" in info.value.message
    assert "max_batch_size" in (info.value.hint or "")
    with pytest.raises(ConfigError):
        parse_set_option("no_equals_sign")


def test_bad_values_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"sut": {"max_batch_size": 0}}])
    assert "sut.max_batch_size" in info.value.message
    assert "\n" not in info.value.message
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"typo_key": 1}])
    assert "typo_key" in info.value.message and "unknown setting" in info.value.message


def test_layers_later_wins_and_nested_merge() -> None:
    spec = build_run_spec([
        {"sut": {"max_batch_size": 4, "workers": 2}},
        {"sut": {"max_batch_size": 16}},
    ])
    assert spec.sut.max_batch_size == 16 and spec.sut.workers == 2


def test_card_run_defaults_are_the_lowest_layer() -> None:
    demo = resolve_spec([])
    assert demo.model == "efficientnet-lite0-demo"
    assert demo.scenarios == (Scenario.OFFLINE, Scenario.SINGLE_STREAM)
    assert demo.test_duration_ms == 1500
    resnet = resolve_spec([{"model": "resnet50"}, {"sut": {"max_batch_size": 4}}])
    assert resnet.scenarios == (Scenario.OFFLINE,)
    assert resnet.sut.max_batch_size == 4  # the flag beats the card's 32


def test_unknown_model_lists_the_catalog() -> None:
    with pytest.raises(UnknownPluginError) as info:
        resolve_spec([{"model": "resnet5"}])
    assert "resnet50" in (info.value.hint or "") and "retinanet" in (info.value.hint or "")


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(listy)
    good = tmp_path / "good.yaml"
    good.write_text("model: resnet50\nsut:\n  max_batch_size: 8\n")
    assert load_config_file(good) == {"model": "resnet50", "sut": {"max_batch_size": 8}}


def test_sut_layout_by_scenario_never_oversubscribes() -> None:
    auto = LocalSutConfig()
    # one worker using every core, except Server on a backend that runs calls in parallel
    assert auto.layout("Offline", 4, parallel=True) == (1, 4)
    assert auto.layout("SingleStream", 4, parallel=True) == (1, 4)
    assert auto.layout("MultiStream", 4, parallel=True) == (1, 4)
    assert auto.layout("Server", 4, parallel=True) == (4, 1)
    assert auto.layout("Server", 4, parallel=False) == (1, 4)
    # what the user sets wins; the other half fills the cores
    assert LocalSutConfig(threads=2).layout("Server", 4, parallel=True) == (2, 2)
    assert LocalSutConfig(workers=2).layout("Offline", 4, parallel=True) == (2, 2)
    assert LocalSutConfig(workers=3, threads=3).layout("Server", 2, parallel=True) == (3, 3)
    assert LocalSutConfig(threads=8).layout("Server", 2, parallel=True) == (1, 8)


def test_spin_wait_on_off_survive_yaml() -> None:
    # YAML reads a bare on/off as true/false; the setting still means on/off
    for text, expected in (("on", "on"), ("off", "off"), ("auto", "auto")):
        spec = build_run_spec([parse_set_option(f"sut.spin_wait={text}")])
        assert spec.sut.spin_wait == expected
    assert build_run_spec([{"sut": {"spin_wait": True}}]).sut.spin_for("Server") is True


def test_empty_scenarios_and_modes_are_refused_except_for_compliance_and_find() -> None:
    with pytest.raises(ConfigError, match="no scenario") as info:
        build_run_spec([{"scenarios": []}])
    assert "--scenario" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="no mode") as info:
        build_run_spec([{"modes": []}])
    assert "--mode" in (info.value.hint or "")
    # `mlperf-pilot compliance` passes modes=[]; find mode measures performance anyway
    assert build_run_spec([{"modes": [], "compliance": True}]).modes == ()
    assert build_run_spec([{"modes": [], "execution_mode": "find"}]).modes == ()


@pytest.mark.parametrize(
    ("layer", "setting", "fix"),
    [
        ({"loadgen": {"target_qps": float("inf")}}, "loadgen.target_qps", "--target-qps"),
        ({"loadgen": {"target_qps": float("nan")}}, "loadgen.target_qps", "--target-qps"),
        ({"loadgen": {"target_qps": 1e300}}, "loadgen.target_qps", "--target-qps"),
        ({"loadgen": {"target_latency_ms": float("-inf")}}, "loadgen.target_latency_ms",
         "--target-latency-ms"),
        ({"loadgen": {"min_duration_ms": 99}}, "loadgen.min_duration_ms", "--duration-ms 100"),
        ({"loadgen": {"min_duration_ms": 10**23}}, "loadgen.min_duration_ms", "--duration-ms"),
        ({"test_duration_ms": 0}, "test_duration_ms", "100"),
        ({"loadgen": {"max_query_count": 10**23}}, "loadgen.max_query_count",
         "loadgen.max_query_count"),
        ({"sut": {"batch_timeout_us": 10**23}}, "sut.batch_timeout_us", "sut.batch_timeout_us"),
        ({"max_reruns": 10**23}, "max_reruns", "max_reruns"),
    ],
)
def test_numbers_out_of_range_name_the_setting_and_the_flag(
    layer: dict, setting: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_run_spec([layer])
    assert setting in info.value.message and "\n" not in info.value.message
    assert fix in (info.value.hint or "")


def test_the_shortest_meaningful_duration_is_accepted() -> None:
    spec = build_run_spec([{"loadgen": {"min_duration_ms": 100}, "test_duration_ms": 100}])
    assert spec.loadgen.min_duration_ms == 100 and spec.test_duration_ms == 100
    # counts beyond the data set are not an error: the run caps them and says so
    assert build_run_spec([{"count": 10**23}]).count == 10**23


def test_config_file_that_is_a_folder_or_binary(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder") as info:
        load_config_file(tmp_path)
    assert "--config" in (info.value.hint or "")
    binary = tmp_path / "model.onnx"
    binary.write_bytes(b"\x08\x07\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config_file(binary)


def test_targets_file_is_read_when_used_and_checked_level_by_level(tmp_path: Path) -> None:
    from mlperf_pilot.calibration import TargetsFile

    path = tmp_path / "targets.yaml"
    path.write_text("sys:\n  resnet50:\n    Offline: 12\n")
    targets = TargetsFile(path)  # a test run never reads it: no error yet
    with pytest.raises(ConfigError, match=r"sys\.resnet50\.Offline must be a mapping"):
        targets.load()
    path.write_text("sys:\n  resnet50:\n    Offline: {target_qps: 5.0}\n  other:\n")
    assert TargetsFile(path).get("sys", "resnet50", Scenario.OFFLINE) == {"target_qps": 5.0}


# ------------------------------------------------------------- the SUT, discriminated on kind


def test_flat_keys_of_old_configs_land_under_the_local_sut(tmp_path: Path) -> None:
    from mlperf_pilot.config import LocalSutConfig, build_run_spec, load_config_file

    old = tmp_path / "old.yaml"
    old.write_text("model: resnet50\nbackend: onnxruntime\ndevice: gpu\nmodel_format: onnx\n"
                   "sut: {max_batch_size: 4}\n")
    spec = build_run_spec([load_config_file(old)])
    assert isinstance(spec.sut, LocalSutConfig) and spec.sut.kind == "local"
    assert (spec.sut.backend, spec.sut.device.value, spec.sut.model_format,
            spec.sut.max_batch_size) == ("onnxruntime", "cuda", "onnx", 4)
    # a later layer's flat key still wins over an earlier layer's nested one, and back
    assert build_run_spec([{"sut": {"backend": "a"}}, {"backend": "b"}]).sut.backend == "b"
    assert build_run_spec([{"backend": "b"}, {"sut": {"backend": "a"}}]).sut.backend == "a"
    # the Python API takes both spellings too
    assert RunSpec(backend="null", sut={"threads": 2}).sut.threads == 2
    assert RunSpec(backend="null").sut.backend == "null"
    # --set takes both spellings
    assert build_run_spec([parse_set_option("model_path=/x")]).sut.model_path == Path("/x")
    assert build_run_spec([parse_set_option("sut.device=gpu")]).sut.device.value == "cuda"


def test_the_sut_config_is_saved_and_read_back_with_its_kind() -> None:
    spec = RunSpec(backend="null", sut={"workers": 2})
    again = RunSpec.model_validate_json(spec.model_dump_json())
    assert again == spec and again.model_dump(mode="json")["sut"]["kind"] == "local"
    assert again.model_dump(mode="json")["sut"]["backend"] == "null"


def test_settings_of_another_kind_are_refused_on_the_local_sut() -> None:
    from mlperf_pilot.config import build_run_spec

    with pytest.raises(ConfigError) as caught:
        build_run_spec([{"sut": {"kind": "local", "url": "http://127.0.0.1:1"}}])
    assert "sut.url" in caught.value.message and "unknown setting" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        parse_set_option("sut.no_such_setting=1")
    assert "max_batch_size" in (caught.value.hint or "")

"""The one flag table (config.flags): the CLI's options, the README's table and the
settings each flag sets all come from it; and the one source of the round default, the
compliance tests and the cache folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from mlperf_pilot.cli.main import cli
from mlperf_pilot.compliance.run import SUPPORTED
from mlperf_pilot.config import (
    Device,
    ExecutionMode,
    LocalSutConfig,
    Mode,
    OipSutConfig,
    RunSpec,
    Scenario,
    SutConfig,
    build_run_spec,
    cache_dir_for,
    default_cache_dir,
    parse_set_option,
)
from mlperf_pilot.config.flags import RUN_FLAGS, flags_for, flags_markdown, flags_to_layer
from mlperf_pilot.config.sut import ServerlessSutConfig, known_sut_fields
from mlperf_pilot.errors import ConfigError, UnknownPluginError
from mlperf_pilot.submission.rounds import DEFAULT_ROUND, load_round
from mlperf_pilot.sut.kind import SutKind
from mlperf_pilot.sut.registry import SUT_KINDS
from mlperf_pilot.vocab import COMPLIANCE_TESTS

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- flags table: generated, do not edit -->\n", "<!-- end of flags table -->\n"


def parse(command: str, *argv: str) -> dict[str, Any]:
    """What click makes of ``argv`` for ``command`` (parsing only, nothing runs)."""
    with click.Context(cli) as parent:
        ctx = cli.get_command(parent, command).make_context(command, list(argv),
                                                              parent=parent)
        return dict(ctx.params)


def spec_from(*argv: str, lower: dict[str, Any] | None = None) -> RunSpec:
    layers = [lower] if lower else []
    return build_run_spec([*layers, flags_to_layer(parse("run", *argv))])


def setting(spec: RunSpec, key: str) -> Any:
    value: Any = spec
    for part in key.split("."):
        value = getattr(value, part)
    return value


# ------------------------------------------------------------------- README and help


def test_readme_flag_table_is_generated_from_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    table = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    assert table == flags_markdown(), (
        "README's flag table is stale: paste `mlperf-pilot list flags`")


def test_list_flags_prints_the_readme_table_and_json() -> None:
    import json

    from click.testing import CliRunner

    from mlperf_pilot.cli.main import cli

    runner = CliRunner()
    shown = runner.invoke(cli, ["list", "flags"])
    assert shown.exit_code == 0 and shown.output == flags_markdown()
    data = json.loads(runner.invoke(cli, ["list", "flags", "--json"]).output)
    assert [row["flag"] for row in data] == [flag.name for flag in RUN_FLAGS]
    assert {"flag": "--model-path", "setting": "sut.model_path"}.items() <= next(
        row for row in data if row["flag"] == "--model-path").items()


def test_markdown_has_one_row_per_flag_and_escapes_pipes() -> None:
    rows = flags_markdown().splitlines()[2:]
    assert len(rows) == len(RUN_FLAGS)
    for row, flag in zip(rows, RUN_FLAGS, strict=True):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]  # an escaped \| stays inside its cell
        assert len(cells) == 3, row
        assert cells[0].strip().startswith(f"`{flag.name}") and f"`{flag.key}`" in cells[1]
    assert "`--execution-mode test\\|find\\|valid`" in flags_markdown()


@pytest.mark.parametrize("command", ["run", "compliance"])
def test_help_lists_every_flag_of_the_command(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"^\s+(--[a-z0-9-]+)", result.output, flags=re.MULTILINE))
    carried = {flag.name for flag in flags_for(command)}  # type: ignore[arg-type]
    assert carried <= listed
    assert {"--config", "--set", "--json"} <= listed
    others = {flag.name for flag in RUN_FLAGS} - carried
    assert not others & listed  # run-only flags are not on `compliance`
    for flag in flags_for(command):  # type: ignore[arg-type]
        assert " ".join(flag.help.split()[:4]) in " ".join(result.output.split())


def test_compliance_takes_fewer_execution_modes() -> None:
    assert parse("compliance", "TEST01", "--execution-mode", "valid")["execution_mode"] \
        == "valid"
    with pytest.raises(click.BadParameter):
        parse("compliance", "TEST01", "--execution-mode", "find")
    assert parse("run", "--execution-mode", "find")["execution_mode"] == "find"


# ------------------------------------------------------------------- keys and values


def _fields_at(model: type[BaseModel], part: str, key: str) -> type[BaseModel] | None:
    annotation = model.model_fields[part].annotation
    if part == "sut":  # the config of the kind the setting belongs to (local, oip)
        return known_sut_fields().get(key.split(".")[-1], LocalSutConfig)
    return annotation if isinstance(annotation, type) and issubclass(
        annotation, BaseModel) else None


@pytest.mark.parametrize("flag", RUN_FLAGS, ids=lambda f: f.name)
def test_every_key_is_a_run_spec_setting(flag: Any) -> None:
    parse_set_option(f"{flag.key}=1")  # --set knows the key
    model: type[BaseModel] | None = RunSpec
    for part in flag.key.split("."):
        assert model is not None and part in model.model_fields, flag.key
        model = _fields_at(model, part, flag.key)
    assert flag.name.startswith("--") and flag.help
    if flag.key.startswith("sut."):
        owner = known_sut_fields()[flag.key.split(".")[1]]
        assert owner in (LocalSutConfig, OipSutConfig, ServerlessSutConfig)


CASES: list[tuple[list[str], str, Any]] = [
    (["--model", "resnet50"], "model", "resnet50"),
    (["--sut", "local"], "sut.kind", "local"),
    (["--backend", "onnxruntime"], "sut.backend", "onnxruntime"),
    (["--device", "gpu"], "sut.device", Device.CUDA),
    (["--model-format", "onnx-opset8"], "sut.model_format", "onnx-opset8"),
    (["--model-path", "m.onnx"], "sut.model_path", Path("m.onnx")),
    (["--endpoint", "http://127.0.0.1:8000/"], "sut.endpoint", "http://127.0.0.1:8000"),
    (["--endpoint", "http://h:1", "--remote-model", "m"], "sut.remote_model", "m"),
    (["--endpoint", "http://h:1", "--token-file", "t"], "sut.token_file", Path("t")),
    (["--endpoint", "http://h:1", "--concurrency", "3"], "sut.concurrency", 3),
    (["--endpoint", "http://h:1", "--request-timeout-ms", "50"], "sut.request_timeout_ms",
     50),
    (["--endpoint", "http://h:1", "--protocol", "json"], "sut.protocol", "json"),
    (["--endpoint", "http://h:1", "--http2"], "sut.http2", True),
    (["--sut", "serverless", "--bucket", "b1"], "sut.bucket", "b1"),
    (["--sut", "serverless", "--storage-endpoint", "http://127.0.0.1:5000/"],
     "sut.storage_endpoint", "http://127.0.0.1:5000"),
    (["--sut", "serverless", "--functions", "local"], "sut.functions", "local"),
    (["--sut", "serverless", "--memory-mb", "3008"], "sut.memory_mb", 3008),
    (["--sut", "serverless", "--inline-samples-mb", "0.5"], "sut.inline_samples_mb", 0.5),
    (["--dataset", "imagenet"], "dataset", "imagenet"),
    (["--dataset-path", "imgs"], "dataset_path", Path("imgs")),
    (["--scenario", "Server", "--scenario", "offline,Server"], "scenarios",
     (Scenario.SERVER, Scenario.OFFLINE)),
    (["--mode", "accuracy"], "modes", (Mode.ACCURACY,)),
    (["--execution-mode", "valid"], "execution_mode", ExecutionMode.VALID),
    (["--targets-file", "t.yaml"], "targets_file", Path("t.yaml")),
    (["--compliance"], "compliance", True),
    (["--round", "v5.1"], "round", "v5.1"),
    (["--count", "7"], "count", 7),
    (["--duration-ms", "250"], "loadgen.min_duration_ms", 250),
    (["--target-qps", "12.5"], "loadgen.target_qps", 12.5),
    (["--target-latency-ms", "3"], "loadgen.target_latency_ms", 3.0),
    (["--max-batch-size", "4"], "sut.max_batch_size", 4),
    (["--threads", "2"], "sut.threads", 2),
    (["--workers", "3"], "sut.workers", 3),
    (["--results-dir", "out"], "results_dir", Path("out")),
    (["--store", "s.sqlite"], "store", Path("s.sqlite")),
    (["--system-name", "box"], "system_name", "box"),
    (["--allow-unverified-download"], "allow_unverified_download", True),
    (["--trace"], "trace", True),
]


@pytest.mark.parametrize(("argv", "key", "expected"), CASES, ids=[c[1] for c in CASES])
def test_each_flag_sets_its_setting(argv: list[str], key: str, expected: Any) -> None:
    flag = next(f for f in RUN_FLAGS if f.key == key)  # the flag is the case's last one
    assert flag.name in argv
    spec = spec_from(*argv)
    assert setting(spec, key) == expected
    if key != "sut.kind":  # (another kind: test_sut_flag_...)
        baseline = build_run_spec([{"sut": {"kind": spec.sut.kind}}])  # the kind's defaults
        assert setting(spec, key) != setting(baseline, key)  # the flag changed something


def test_every_flag_has_a_case() -> None:
    assert sorted(case[1] for case in CASES) == sorted(flag.key for flag in RUN_FLAGS)


def test_flags_not_given_leave_the_lower_layers() -> None:
    assert flags_to_layer(parse("run")) == {}
    lower = {"backend": "tflite", "sut": {"threads": 3}, "loadgen": {"target_qps": 9.0},
             "compliance": True}
    spec = spec_from("--workers", "2", "--device", "cuda", "--duration-ms", "400",
                     lower=lower)
    assert (spec.sut.backend, spec.sut.threads, spec.sut.workers) == ("tflite", 3, 2)
    assert spec.sut.device is Device.CUDA
    assert (spec.loadgen.target_qps, spec.loadgen.min_duration_ms) == (9.0, 400)
    assert spec.compliance is True  # a flag left out is not a False that overrides


def test_flag_values_are_checked_as_settings() -> None:
    with pytest.raises(ConfigError) as info:
        spec_from("--duration-ms", "5")
    assert "loadgen.min_duration_ms" in info.value.message
    assert "--duration-ms" in (info.value.hint or "")
    with pytest.raises(UnknownPluginError) as unknown:
        spec_from("--sut", "nosuch")
    assert "nosuch" in unknown.value.message and "local" in (unknown.value.hint or "")


class _OtherSutConfig(SutConfig):
    kind: Literal["other"] = "other"
    endpoint: str = "http://127.0.0.1:9"


class _OtherKind(SutKind):
    """A SUT kind as the registry holds one; validating a RunSpec needs only its config
    (the engine's steps are exercised in tests/integration/test_engine_seams.py)."""

    name = "other"
    config = _OtherSutConfig

    @classmethod
    def plan(cls, spec, card, catalog):  # type: ignore[no-untyped-def]
        raise AssertionError("not planned in this test")

    @classmethod
    def prepare(cls, ctx):  # type: ignore[no-untyped-def]
        raise AssertionError("not prepared in this test")

    @classmethod
    def open(cls, job, store, decoder):  # type: ignore[no-untyped-def]
        raise AssertionError("not opened in this test")


@pytest.fixture
def other_kind() -> Iterator[None]:
    SUT_KINDS.register("other", _OtherKind)
    yield
    SUT_KINDS.unregister("other")


@pytest.mark.usefixtures("other_kind")
def test_sut_flag_chooses_the_kind_and_its_settings() -> None:
    spec = spec_from("--sut", "other", "--max-batch-size", "4", "--duration-ms", "300")
    assert isinstance(spec.sut, _OtherSutConfig) and spec.sut.max_batch_size == 4
    assert spec.local is None
    # no --sut: the kind of a lower layer stays (the flag has no default of its own)
    lower = {"sut": {"kind": "other", "endpoint": "http://127.0.0.1:8"}}
    spec = spec_from("--workers", "2", lower=lower)
    assert isinstance(spec.sut, _OtherSutConfig)
    assert (spec.sut.endpoint, spec.sut.workers) == ("http://127.0.0.1:8", 2)
    with pytest.raises(ConfigError) as info:  # a local setting is not the other kind's
        spec_from("--sut", "other", "--threads", "2")
    assert "sut.threads" in info.value.message


# ----------------------------------------------------------------- one source each


def test_the_round_default_has_one_source() -> None:
    assert RunSpec().round == DEFAULT_ROUND
    assert load_round(DEFAULT_ROUND).round == DEFAULT_ROUND
    (round_flag,) = [f for f in RUN_FLAGS if f.name == "--round"]
    assert f"default {DEFAULT_ROUND}" in round_flag.help
    result = CliRunner().invoke(cli, ["submission", "check", "--help"], terminal_width=200)
    assert f"default: {DEFAULT_ROUND}" in result.output


def test_the_compliance_tests_have_one_source() -> None:
    assert SUPPORTED == COMPLIANCE_TESTS
    assert RunSpec(compliance_tests="test01,TEST04").compliance_tests == ("TEST01", "TEST04")
    with pytest.raises(ConfigError) as info:
        build_run_spec([{"compliance_tests": ["TEST06"]}])
    assert "TEST06" in info.value.message
    assert all(test in info.value.message for test in COMPLIANCE_TESTS)


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_PILOT_CACHE", str(tmp_path / "env"))
    given, cli_default = tmp_path / "given", tmp_path / "flag"
    assert cache_dir_for(RunSpec(cache_dir=given), cli_default) == given
    assert cache_dir_for(RunSpec(), cli_default) == cli_default
    assert cache_dir_for(RunSpec()) == tmp_path / "env" == default_cache_dir()
    assert cache_dir_for(None) == tmp_path / "env"
    monkeypatch.delenv("MLPERF_PILOT_CACHE")
    assert cache_dir_for(RunSpec()) == default_cache_dir() != tmp_path / "env"


def test_sut_settings_of_the_table_are_local_or_shared() -> None:
    shared = set(SutConfig.model_fields)
    local_only = set(LocalSutConfig.model_fields) - shared
    keys = {flag.key.split(".", 1)[1] for flag in RUN_FLAGS if flag.key.startswith("sut.")}
    assert {"kind", "max_batch_size", "workers"} <= keys & shared
    assert {"backend", "device", "model_format", "model_path", "threads"} <= keys & local_only
    oip_only = set(OipSutConfig.model_fields) - shared
    assert {"endpoint", "remote_model", "token_file", "concurrency", "request_timeout_ms",
            "protocol", "http2"} <= keys & oip_only

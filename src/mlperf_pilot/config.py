"""The one configuration schema: RunSpec and the enums it uses.

A RunSpec says how a benchmark is *run*; what a model *is* lives in its catalog card
(as LoadGen separates user.conf from mlperf.conf). The same schema is filled from YAML
files, ``--set key=value`` and CLI flags, layered in this order (later wins)::

    defaults < catalog card run_defaults < --config file < --set key=value < explicit flags

Every model is frozen and forbids unknown keys, so a typo is an error, never ignored.
The resolved RunSpec is saved next to every result.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlperf_pilot.errors import ConfigError


class Scenario(str, enum.Enum):
    """The four LoadGen scenarios, spelled as LoadGen spells them."""

    SINGLE_STREAM = "SingleStream"
    MULTI_STREAM = "MultiStream"
    SERVER = "Server"
    OFFLINE = "Offline"

    @classmethod
    def parse(cls, text: str) -> Scenario:
        key = text.strip().lower().replace("-", "").replace("_", "")
        for member in cls:
            if member.value.lower() == key:
                return member
        raise ConfigError(
            f"unknown scenario {text!r}",
            hint="use one of SingleStream, MultiStream, Server, Offline, or all",
        )


class Mode(str, enum.Enum):
    """What a LoadGen run measures."""

    ACCURACY = "accuracy"
    PERFORMANCE = "performance"

    @classmethod
    def parse(cls, text: str) -> Mode:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ConfigError(
                f"unknown mode {text!r}", hint="use accuracy, performance or both"
            ) from None


class ExecutionMode(str, enum.Enum):
    """How long and how official a run is.

    ``test``: short runs (``test_duration_ms``) with targets estimated from a warm-up when
    none are given; results are for trying things out.
    ``find``: short performance runs that measure what the system sustains and write the
    targets file (calibration).
    ``valid``: the official durations and query counts from mlperf.conf, with targets
    from the flags, else the targets file, else the warm-up; an INVALID run is rerun
    with an adjusted target (``max_reruns``).
    """

    TEST = "test"
    FIND = "find"
    VALID = "valid"


class Device(str, enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"

    @classmethod
    def parse(cls, text: str) -> Device:
        key = text.strip().lower()
        if key == "gpu":  # the reference flow's spelling
            return cls.CUDA
        try:
            return cls(key)
        except ValueError:
            raise ConfigError(
                f"unknown device {text!r}", hint="use cpu, cuda (or gpu, an alias of cuda)"
            ) from None


ALL_SCENARIOS: tuple[Scenario, ...] = (
    Scenario.SINGLE_STREAM,
    Scenario.MULTI_STREAM,
    Scenario.SERVER,
    Scenario.OFFLINE,
)


# Bounds that keep every number meaningful to LoadGen and representable where it goes
# (LoadGen keeps durations as int64 nanoseconds and counts as uint64): no value a user
# can type ends in an OverflowError or a run that measures nothing.
MIN_DURATION_MS = 100  # shorter runs measure nothing (0: one query, and LoadGen says VALID)
MAX_DURATION_MS = 10**12  # about 31 years; x 1e6 still fits LoadGen's int64 nanoseconds
MAX_COUNT = 2**63 - 1
MAX_QPS = 1e9
MIN_QPS = 1e-3
MAX_LATENCY_MS = 1e9
MAX_BATCH_TIMEOUT_US = 10**9  # 1000 s; Python's queue timeouts overflow past ~9e9 s
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


class SutSettings(_Frozen):
    """How the local SUT batches and threads."""

    max_batch_size: int = Field(default=8, ge=1)
    # Server/MultiStream: how long the batcher may wait for more samples before running a
    # partial batch; 0 = run whatever is queued at once.
    batch_timeout_us: int = Field(default=0, ge=0, le=MAX_BATCH_TIMEOUT_US)
    # Inference threads pulling batches; 0 = by scenario (see ``layout``).
    # (max_batch_size, workers and threads have no upper bound here: plan_run refuses
    # what this machine's memory and cores cannot carry, naming the limit.)
    workers: int = Field(default=0, ge=0)
    # Backend intra-op threads; 0 = the number of usable cores divided by ``workers``.
    threads: int = Field(default=0, ge=0)
    # After a failed inference: "stop" completes every later sample without running it
    # (the run is INVALID either way and ends quickly); "continue" keeps trying.
    on_error: str = Field(default="stop", pattern="^(stop|continue)$")
    # Busy-waiting backend threads: "auto" = on, except in Server, where LoadGen's issue
    # thread needs the cores.
    spin_wait: str = Field(default="auto", pattern="^(auto|on|off)$")

    @field_validator("spin_wait", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        # YAML (config files, --set) reads a bare on/off as a boolean
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    def layout(self, scenario: str, cores: int, *, parallel: bool) -> tuple[int, int]:
        """(workers, intra-op threads per worker) for one scenario, never more threads
        than ``cores`` unless the user asked for them. Measured on 2 cores
        (benchmarks/results/scaling.md): Offline, SingleStream and MultiStream are
        best with one worker using every core; Server, where the backend's idle threads
        do not spin and batches are mostly small, with one single-threaded worker per
        core (EfficientNet-Lite0 peak VALID QPS 0.98x Offline against 0.73x).
        ``parallel`` is false for backends that run one call at a time, or off the CPU:
        they get one worker."""
        workers = self.workers
        if not workers:
            workers = 1
            if scenario == "Server" and parallel:
                workers = max(1, cores // (self.threads or 1))
        threads = self.threads or max(1, cores // workers)
        return workers, threads

    def spin_for(self, scenario: str) -> bool:
        if self.spin_wait == "auto":
            return scenario != "Server"
        return self.spin_wait == "on"


class RunSpec(_Frozen):
    """Everything that decides how one ``mlperf-pilot run`` behaves."""

    model: str = "efficientnet-lite0-demo"
    backend: str | None = None  # None = the card's default backend
    device: Device = Device.CPU
    model_format: str | None = None  # a card format id, e.g. "onnx-opset11"
    model_path: Path | None = None
    # the sha256 of what the model format's URLs serve, for a format the catalog pins
    # no checksum for; and whether a download that nothing verifies is accepted
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
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
    sut: SutSettings = SutSettings()
    results_dir: Path = Path("results")
    system_name: str | None = None  # None = "<backend>-<device>"
    cache_dir: Path | None = None
    preprocess_workers: int = Field(default=0, ge=0)  # 0 = number of usable cores
    # calibration targets (default ./mlperf-pilot-targets.yaml) and automatic reruns
    targets_file: Path | None = None
    max_reruns: int = Field(default=1, ge=0, le=MAX_RERUNS)
    # the MLPerf round whose rules apply (compliance tests, submission layout)
    round: str = "v6.1"
    # run the round's compliance tests after each scenario's runs
    compliance: bool = False
    # the tests to run (default: those the round requires for the benchmark)
    compliance_tests: tuple[str, ...] | None = None

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
            unknown = [t for t in tests if t not in ("TEST01", "TEST04", "TEST05")]
            if unknown:
                raise ValueError(f"unknown compliance test {unknown[0]} (TEST01, TEST04, TEST05)")
            return tests
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return Device.parse(value) if isinstance(value, str) else value

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

    def resolved_system_name(self, backend: str) -> str:
        return self.system_name or f"{backend}-{self.device.value}"


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


# --------------------------------------------------------------------------------------
# Layering: dicts merged in order, then validated once.


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; nested mappings merge key by key."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_set_option(item: str) -> dict[str, Any]:
    """Turn ``a.b=value`` into ``{"a": {"b": value}}``; the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set expects key=value, got {item!r}", hint="e.g. --set sut.max_batch_size=16"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    _check_key_path(parts)
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def _check_key_path(parts: list[str]) -> None:
    model: type[BaseModel] | None = RunSpec
    for depth, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            prefix = ".".join(parts[:depth])
            valid = sorted(model.model_fields) if model is not None else []
            where = f" under {prefix!r}" if prefix else ""
            raise ConfigError(
                f"unknown setting {'.'.join(parts)!r}{where}",
                hint=f"valid keys{where}: {', '.join(valid)}",
            )
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(
            annotation, BaseModel
        ) else None


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML/JSON run config; the top level must be a mapping of RunSpec keys."""
    fix = "give --config a YAML or JSON file of run settings (e.g. 'model: resnet50')"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="check the path given to --config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a file", hint=fix) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not a text file (byte {exc.start} is not UTF-8)", hint=fix
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}",
                          hint=fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"config file {path} is not valid YAML{where}", hint="fix the syntax and retry"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings, not {type(data).__name__}",
            hint="e.g. 'model: resnet50' on its own line",
        )
    return data


def build_run_spec(layers: Iterable[Mapping[str, Any]]) -> RunSpec:
    """Merge the layers (lowest first) and validate them into a RunSpec."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return RunSpec.model_validate(merged)
    except ValidationError as exc:
        raise config_error_from(exc) from None


def config_error_from(exc: ValidationError) -> ConfigError:
    """One line per problem, naming the setting and what is wrong with it."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        value = err.get("input")
        shown = f" (got {value!r})" if err["type"] != "extra_forbidden" and not isinstance(
            value, (dict, list)) else ""
        problems.append(f"{loc}: {msg}{shown}")
    first, rest = problems[0], problems[1:]
    more = f" (and {len(rest)} more: {'; '.join(rest)})" if rest else ""
    errors = exc.errors()
    loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
    hint = _HINTS.get(loc) or (
        f"fix {loc} (in --config, or --set {loc}=VALUE); see `mlperf-pilot run --help`"
        if loc else "see `mlperf-pilot run --help`")
    return ConfigError(f"invalid setting {first}{more}", hint=hint)


# the fix for a value out of range, by setting (the flag that sets it, where there is one)
_HINTS = {
    "count": "give --count a number of samples, 1 or more (more than the data set has "
             "uses all of it)",
    "loadgen.min_duration_ms": f"use --duration-ms {MIN_DURATION_MS} or more (at most "
                               f"{MAX_DURATION_MS}): a shorter run measures nothing (at 0 "
                               "LoadGen runs one query and calls it VALID)",
    "test_duration_ms": f"set test_duration_ms to {MIN_DURATION_MS} or more (at most "
                        f"{MAX_DURATION_MS}); a shorter run measures nothing",
    "loadgen.target_qps": f"give --target-qps a finite number of queries per second from "
                          f"{MIN_QPS:g} to {MAX_QPS:,.0f}, or leave it out (estimated or "
                          "calibrated)",
    "loadgen.target_latency_ms": "give --target-latency-ms a finite number of milliseconds "
                                 f"above 0, at most {MAX_LATENCY_MS:,.0f}, or leave it out",
    "sut.max_batch_size": "give --max-batch-size a whole number, 1 or more",
    "sut.threads": "give --threads a whole number, 0 (by cores) or more",
    "sut.workers": "give --workers a whole number, 0 (by scenario) or more",
}


def default_cache_dir() -> Path:
    """``MLPERF_PILOT_CACHE`` if set, else the platform's user cache dir."""
    env = os.environ.get("MLPERF_PILOT_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlperf-pilot"))

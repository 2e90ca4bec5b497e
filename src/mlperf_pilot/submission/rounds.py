"""Per-round submission rules and layouts, as data (``rounds/*.yaml``).

Each round file holds the official checker's facts for that round (required scenarios
per system type, accuracy targets, sample counts, seeds, latency bounds, compliance
tests); ``common.yaml`` the facts every round shares. :class:`Layout` says where each
file of a submission lives in that round: v6.0+ keeps everything under
``results/<system>/<benchmark>/<scenario>`` with sources in ``src/``; v5.x and older
have ``measurements/`` and ``compliance/`` trees and ``code/``.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlperf_pilot.errors import UnknownPluginError

# the newest round known here: what `run`, `compliance` and `submission` use unless
# --round says otherwise (the one spelling of the default)
DEFAULT_ROUND = "v6.1"
LATEST = DEFAULT_ROUND
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
# A submission-tree scenario of the LLM benchmarks: a Server run judged by tighter
# latency bounds. Not a LoadGen scenario, so not a member of vocab.Scenario.
INTERACTIVE = "Interactive"
# The official checker's last resort for a folder name no mapping knows, tried in order
# (first match wins; the order matters: "bert-99.9" contains "bert-99").
NAME_FALLBACKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("mobilenet", "efficientnet", "resnet50"), "resnet"),
    (("bert-99.9",), "bert-99.9"),
    (("bert-99",), "bert-99"),
    (("llama3_1-405b",), "llama3.1-405b"),
)


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricBound(_Data):
    metric: str
    value: float


PerScenario = dict[str, Any]


class BenchmarkRules(_Data):
    required_scenarios: dict[str, list[str]] = Field(default_factory=dict)
    optional_scenarios: dict[str, list[str]] = Field(default_factory=dict)
    accuracy_targets: list[MetricBound] | dict[str, list[MetricBound]] = Field(
        default_factory=list)
    accuracy_upper_limits: list[MetricBound] | dict[str, list[MetricBound]] = Field(
        default_factory=list)
    accuracy_delta_percent: dict[str, float] = Field(default_factory=dict)
    performance_sample_count: int | None = None
    accuracy_sample_count: int | dict[str, int] | None = None
    dataset_size: int | dict[str, int] | None = None
    latency_constraint_ns: dict[str, Any] = Field(default_factory=dict)
    min_queries: dict[str, int] = Field(default_factory=dict)
    compliance_tests: list[str] = Field(default_factory=list)
    result_fields: dict[str, str] = Field(default_factory=dict)

    def scenarios_for(self, system_type: str) -> tuple[list[str], list[str]]:
        """(required, optional) scenarios for a system type."""
        key = "datacenter,edge" if system_type == "edge,datacenter" else system_type
        return (list(self.required_scenarios.get(key, [])),
                list(self.optional_scenarios.get(key, [])))

    def targets_for(self, scenario: str) -> list[MetricBound]:
        targets = self.accuracy_targets
        return targets.get(scenario, []) if isinstance(targets, dict) else targets

    def upper_limits_for(self, scenario: str) -> list[MetricBound]:
        limits = self.accuracy_upper_limits
        return limits.get(scenario, []) if isinstance(limits, dict) else limits

    def samples_for(self, scenario: str) -> int | None:
        """How many samples an accuracy run must cover."""
        for value in (self.accuracy_sample_count, self.dataset_size):
            if isinstance(value, dict):
                if scenario in value:
                    return int(value[scenario])
            elif value is not None:
                return int(value)
        return None


class Round(_Data):
    round: str
    seeds: dict[str, int]
    test05_seeds: dict[str, int] | None = None
    model_mapping: dict[str, str] = Field(default_factory=dict)
    result_fields: dict[str, str]
    ignore_errors: list[str] = Field(default_factory=list)
    models: dict[str, BenchmarkRules]

    @property
    def number(self) -> tuple[int, int]:
        major, minor = self.round.lstrip("v").split(".")
        return int(major), int(minor)

    @property
    def layout(self) -> Layout:
        return Layout(self.number >= (6, 0))

    def benchmark(self, name: str) -> BenchmarkRules:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownPluginError(f"{self.round} benchmark", name, self.models) from None

    def mlperf_model(self, directory: str, submitter_mapping: dict[str, str] | None = None
                     ) -> str:
        """The official benchmark a result directory stands for, resolved in the official
        checker's order: the official name itself, the round's mapping, the submitter's
        ``model_mapping.json``, then the name fallbacks (:data:`NAME_FALLBACKS`: a name
        containing ``mobilenet``/``efficientnet``/``resnet50`` is resnet, then bert-99.9,
        bert-99, llama3_1-405b), whose result goes through the round's mapping again."""
        if directory in self.models:
            return directory
        mapped = self.model_mapping.get(directory) or (submitter_mapping or {}).get(directory)
        if mapped:
            return str(mapped)
        guess = directory
        for needles, model in NAME_FALLBACKS:
            if any(needle in directory for needle in needles):
                guess = model
                break
        return self.model_mapping.get(guess, guess)

    def result_field(self, benchmark: str, scenario: str) -> str | None:
        rules = self.models.get(benchmark)
        if rules is not None and scenario in rules.result_fields:
            return rules.result_fields[scenario]
        return self.result_fields.get(scenario)


class Layout:
    """Where a round keeps each part of a submission (paths relative to the
    ``<division>/<submitter>`` folder)."""

    def __init__(self, unified: bool) -> None:
        self.unified = unified  # v6.0+: measurements and compliance inside results/

    @property
    def source_dir(self) -> str:
        return "src" if self.unified else "code"

    @property
    def calibration(self) -> str:
        return "documentation/calibration.md" if self.unified else "calibration.md"

    def scenario_dir(self, system: str, benchmark: str, scenario: str) -> Path:
        return Path("results") / system / benchmark / scenario

    def measurements_dir(self, system: str, benchmark: str, scenario: str) -> Path:
        if self.unified:
            return self.scenario_dir(system, benchmark, scenario)
        return Path("measurements") / system / benchmark / scenario

    def measurements_json(self, system: str, benchmark: str, scenario: str) -> Path:
        name = "measurements.json" if self.unified else f"{system}.json"
        return self.measurements_dir(system, benchmark, scenario) / name

    def compliance_dir(self, system: str, benchmark: str, scenario: str) -> Path:
        if self.unified:
            return self.scenario_dir(system, benchmark, scenario)
        return Path("compliance") / system / benchmark / scenario


class Common(_Data):
    accuracy_patterns: dict[str, str]
    system_required_fields: list[str]
    system_meaningful_fields: list[str]
    system_numeric_fields: list[str]
    valid_availabilities: list[str]
    offline_min_samples_per_query: dict[str, int]
    test_duration_ms: int
    max_accuracy_log_bytes: int
    system_network_fields: list[str]
    network_sut_name_substring: str
    llm_models: list[str]
    equal_issue_models: list[str]
    measurements_required_fields: list[str]
    measurements_required_files: list[str]
    required_accuracy_files: dict[str, dict[str, dict[str, list[str]]]]
    test01_accuracy_files: list[str]
    equal_issue_rounds: list[str]
    llm_latency_limits: dict[str, dict[str, dict[str, int]]]
    units: dict[str, str]
    special_units: dict[str, dict[str, str]]
    power_units: dict[str, str]
    power_files: list[str]
    power_run_files: list[str]
    power_run_optional_files: list[str]
    always_optional_files: list[str]


def _load(name: str) -> dict[str, Any]:
    text = resources.files("mlperf_pilot.submission").joinpath("rounds", name).read_text(
        encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def available_rounds() -> list[str]:
    folder = resources.files("mlperf_pilot.submission").joinpath("rounds")
    names = [e.name[:-5] for e in folder.iterdir() if e.name.startswith("v")]
    return sorted(names, key=lambda r: tuple(int(p) for p in r.lstrip("v").split(".")))


@cache
def load_round(name: str) -> Round:
    if name not in available_rounds():
        raise UnknownPluginError("round", name, available_rounds())
    return Round.model_validate(_load(f"{name}.yaml"))


@lru_cache(maxsize=1)
def common() -> Common:
    return Common.model_validate(_load("common.yaml"))

"""Planning a run: RunSpec + catalog -> RunPlan, every name and combination checked
before anything is downloaded or run: the model and dataset cards, the SUT kind's own
names (backend, format, device), the compliance round and its tests, the paths, and
this machine (preflight)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlperf_pilot.catalog import Catalog, DatasetCard, ModelCard, ModelFormat, PreprocessSpec
from mlperf_pilot.catalog import load_catalog as _load_catalog
from mlperf_pilot.config import RunSpec, build_run_spec, deep_merge
from mlperf_pilot.config.sut import lift_legacy_keys
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.preflight import check_run
from mlperf_pilot.sut.kind import SutKind, SutPlan
from mlperf_pilot.sut.registry import sut_kind


def resolve_spec(layers: Iterable[Mapping[str, Any]], catalog: Catalog | None = None) -> RunSpec:
    """Merge config layers (lowest first) over the chosen model card's run_defaults."""
    catalog = catalog or _load_catalog()
    layers = [lift_legacy_keys(layer) for layer in layers]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    model = merged.get("model") or RunSpec.model_fields["model"].default
    card = catalog.model(str(model))
    return build_run_spec([card.run_defaults, *layers])


def layered(spec: RunSpec, catalog: Catalog) -> RunSpec:
    """A RunSpec made in Python, layered like the CLI's: what it sets explicitly over
    its card's run_defaults (a spec that is already layered comes back the same)."""
    return resolve_spec([spec.model_dump(exclude_unset=True)], catalog)


@dataclass(frozen=True)
class CompliancePlan:
    """The compliance tests a run will do, known before anything runs."""

    round: str
    benchmark: str  # the round's benchmark name
    tests: tuple[str, ...]
    skipped: tuple[str, ...]  # required by the round but not supported here
    accuracy_delta_percent: float
    seeds: Any  # the round's alternate seeds (TEST05)


@dataclass(frozen=True)
class RunPlan:
    spec: RunSpec
    card: ModelCard
    dataset_card: DatasetCard
    recipe: PreprocessSpec
    sut: SutPlan
    catalog: Catalog = field(repr=False)
    compliance: CompliancePlan | None = None

    @property
    def fmt(self) -> ModelFormat:
        return self.sut.fmt

    @property
    def kind(self) -> type[SutKind]:
        return sut_kind(self.sut.kind)

    @property
    def system(self) -> str:
        return self.spec.resolved_system_name(self.sut.system)


def plan_run(spec: RunSpec, catalog: Catalog | None = None, *, layer: bool = True) -> RunPlan:
    """Check every name and combination before anything is downloaded or run. A spec
    is first layered over its card's run_defaults as the CLI does (``layer=False``:
    take it as it is)."""
    catalog = catalog or _load_catalog()
    if layer:
        spec = layered(spec, catalog)
    card = catalog.model(spec.model)
    kind = sut_kind(spec.sut.kind)
    sut_plan = kind.plan(spec, card, catalog)
    dataset_card = catalog.dataset(spec.dataset or card.dataset)
    if dataset_card.task != card.task:
        raise ConfigError(
            f"dataset {dataset_card.name} is for {dataset_card.task}, model {card.name} "
            f"for {card.task}",
            hint=f"leave out --dataset (the card uses {card.dataset})",
        )
    if spec.dataset_path is not None and not spec.dataset_path.expanduser().is_dir():
        raise ConfigError(
            f"dataset folder {spec.dataset_path} does not exist",
            hint="check --dataset-path (the folder with the images and the list file)",
        )
    compliance = plan_compliance(spec, card) if spec.compliance else None
    recipe = catalog.recipe(sut_plan.fmt.preprocess)
    system = spec.resolved_system_name(sut_plan.system)
    # folders, threads, batch memory, targets file: before any model load or preprocessing
    check_run(spec, system=system, model=card.name, recipe=recipe, parallel=sut_plan.parallel)
    return RunPlan(spec, card, dataset_card, recipe, sut_plan, catalog, compliance)


def plan_compliance(spec: RunSpec, card: ModelCard) -> CompliancePlan:
    """The round's compliance tests for this model (an unknown round or a model the
    round does not have is refused here, before any run)."""
    from mlperf_pilot.compliance.run import SUPPORTED
    from mlperf_pilot.submission.rounds import load_round

    rules = load_round(spec.round)
    benchmark = rules.mlperf_model(card.benchmark)
    if benchmark not in rules.models:
        raise ConfigError(f"{card.name} ({benchmark}) is not a benchmark of "
                          f"round {rules.round}", hint="choose another --round")
    required = rules.models[benchmark].compliance_tests
    tests = spec.compliance_tests or tuple(t for t in required if t in SUPPORTED)
    skipped = () if spec.compliance_tests else tuple(t for t in required if t not in SUPPORTED)
    delta = rules.models[benchmark].accuracy_delta_percent.get(
        card.accuracy.metric, 0.1 if benchmark.endswith("99.9") else 1.0)
    return CompliancePlan(round=rules.round, benchmark=benchmark, tests=tuple(tests),
                          skipped=skipped, accuracy_delta_percent=delta, seeds=rules.seeds)


__all__ = ["CompliancePlan", "RunPlan", "layered", "plan_compliance", "plan_run",
           "resolve_spec"]

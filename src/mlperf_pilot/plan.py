"""Planning a run: RunSpec + catalog -> RunPlan, every name and combination checked
before anything is downloaded or run (the execution is :mod:`mlperf_pilot.runner`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_pilot.backends import backend_class
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.catalog import Catalog, DatasetCard, ModelCard, ModelFormat, PreprocessSpec
from mlperf_pilot.catalog import load_catalog as _load_catalog
from mlperf_pilot.config import Device, RunSpec, build_run_spec, deep_merge
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.preflight import check_run


def resolve_spec(layers: Iterable[Mapping[str, Any]], catalog: Catalog | None = None) -> RunSpec:
    """Merge config layers (lowest first) over the chosen model card's run_defaults."""
    catalog = catalog or _load_catalog()
    layers = list(layers)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    model = merged.get("model") or RunSpec.model_fields["model"].default
    card = catalog.model(str(model))
    return build_run_spec([card.run_defaults, *layers])


@dataclass(frozen=True)
class RunPlan:
    spec: RunSpec
    card: ModelCard
    fmt: ModelFormat
    dataset_card: DatasetCard
    recipe: PreprocessSpec
    backend_name: str

    @property
    def system(self) -> str:
        return self.spec.resolved_system_name(f"{self.backend_name}-{self.spec.sut.device.value}")


def plan_run(spec: RunSpec, catalog: Catalog | None = None) -> RunPlan:
    """Check every name and combination before anything is downloaded or run."""
    catalog = catalog or _load_catalog()
    card = catalog.model(spec.model)
    backend_name = spec.sut.backend or card.default_backend
    cls = backend_class(backend_name)
    fmt = choose_format(card, cls, spec.sut.model_format)
    if fmt.format not in cls.formats:
        usable = [f.id for f in card.formats if f.format in cls.formats]
        raise ConfigError(
            f"the {backend_name} backend cannot run {card.name} format {fmt.id} ({fmt.format})",
            hint=f"use --model-format {usable[0]}" if usable else
            f"choose a backend for {fmt.format} models",
        )
    if spec.sut.device not in cls.devices:
        raise ConfigError(
            f"the {backend_name} backend does not support --device {spec.sut.device.value}",
            hint=f"supported: {', '.join(d.value for d in cls.devices)}",
        )
    dataset_card = catalog.dataset(spec.dataset or card.dataset)
    if dataset_card.task != card.task:
        raise ConfigError(
            f"dataset {dataset_card.name} is for {dataset_card.task}, model {card.name} "
            f"for {card.task}",
            hint=f"leave out --dataset (the card uses {card.dataset})",
        )
    _check_paths(spec)
    recipe = catalog.recipe(fmt.preprocess)
    # folders, threads, batch memory, targets file: before any model load or preprocessing
    check_run(spec, system=spec.resolved_system_name(
        f"{backend_name}-{spec.sut.device.value}"), model=card.name,
              recipe=recipe, parallel=cls.thread_safe and spec.sut.device is Device.CPU)
    return RunPlan(spec, card, fmt, dataset_card, recipe, backend_name)


def choose_format(card: ModelCard, backend: type[Backend], requested: str | None
                  ) -> ModelFormat:
    """The format asked for; else, in the backend's order of preference, the card's
    default format when it is of that kind, or the card's first format of that kind
    (``--backend openvino`` picks the IR the card converts to, before the ONNX file
    OpenVINO also reads)."""
    if requested is not None:
        return card.format(requested)
    default = card.format(None)
    for kind in backend.formats:
        if default.format == kind:
            return default
        for fmt in card.formats:
            if fmt.format == kind:
                return fmt
    return default  # plan_run refuses it with the usable choices


def _check_paths(spec: RunSpec) -> None:
    if spec.sut.model_path is not None and not Path(spec.sut.model_path).expanduser().exists():
        raise ConfigError(
            f"model file {spec.sut.model_path} does not exist",
            hint="check --model-path, or leave it out to use the catalog's copy",
        )
    if spec.dataset_path is not None and not Path(spec.dataset_path).expanduser().is_dir():
        raise ConfigError(
            f"dataset folder {spec.dataset_path} does not exist",
            hint="check --dataset-path (the folder with the images and the list file)",
        )


__all__ = ["RunPlan", "choose_format", "plan_run", "resolve_spec"]

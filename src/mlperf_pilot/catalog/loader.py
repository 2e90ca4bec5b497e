"""Load and validate the catalog: model cards, dataset cards, preprocessing recipes.

The YAML files ship inside the package (``catalog/models``, ``catalog/datasets``,
``catalog/preprocessing.yaml``). A malformed card is a bug in the package, reported as
a ConfigError naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mlperf_pilot.catalog.cards import DatasetCard, ModelCard, PreprocessSpec
from mlperf_pilot.errors import ConfigError, UnknownPluginError

_T = TypeVar("_T", bound=BaseModel)


class Catalog:
    """Read-only view of the cards, keyed by name."""

    def __init__(
        self,
        models: dict[str, ModelCard],
        datasets: dict[str, DatasetCard],
        recipes: dict[str, PreprocessSpec],
    ) -> None:
        self._models = models
        self._datasets = datasets
        self._recipes = recipes
        self._check_references()

    @property
    def models(self) -> list[ModelCard]:
        return list(self._models.values())

    @property
    def datasets(self) -> list[DatasetCard]:
        return list(self._datasets.values())

    def model(self, name: str) -> ModelCard:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownPluginError("model", name, self._models) from None

    def dataset(self, name: str) -> DatasetCard:
        try:
            return self._datasets[name]
        except KeyError:
            raise UnknownPluginError("dataset", name, self._datasets) from None

    def recipe(self, name: str) -> PreprocessSpec:
        try:
            return self._recipes[name]
        except KeyError:
            raise UnknownPluginError("preprocessing recipe", name, self._recipes) from None

    def _check_references(self) -> None:
        for card in self._models.values():
            if card.dataset not in self._datasets:
                raise ConfigError(f"model card {card.name} names unknown dataset {card.dataset}")
            for fmt in card.formats:
                if fmt.preprocess not in self._recipes:
                    raise ConfigError(
                        f"model card {card.name} format {fmt.id} names unknown recipe "
                        f"{fmt.preprocess}"
                    )


def _read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"catalog file {origin} is not valid YAML: {exc}") from exc


def _validate(cls: type[_T], data: Any, origin: str) -> _T:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"catalog file {origin}: {loc}: {first['msg']}") from exc


def _yaml_files(folder: str) -> Iterator[tuple[str, str]]:
    root = resources.files("mlperf_pilot.catalog").joinpath(folder)
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            yield entry.name, entry.read_text(encoding="utf-8")


def _load_cards(folder: str, cls: type[_T]) -> dict[str, _T]:
    cards: dict[str, _T] = {}
    for file_name, text in _yaml_files(folder):
        origin = f"{folder}/{file_name}"
        card = _validate(cls, _read_yaml(text, origin), origin)
        name = card.name  # type: ignore[attr-defined]
        if name in cards:
            raise ConfigError(f"catalog file {origin}: duplicate {folder[:-1]} name {name!r}")
        cards[name] = card
    return cards


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The packaged catalog (parsed once per process)."""
    recipes_text = resources.files("mlperf_pilot.catalog").joinpath(
        "preprocessing.yaml"
    ).read_text(encoding="utf-8")
    raw_recipes = _read_yaml(recipes_text, "preprocessing.yaml") or {}
    recipes = {
        name: _validate(PreprocessSpec, spec, f"preprocessing.yaml:{name}")
        for name, spec in raw_recipes.items()
    }
    return Catalog(
        models=_load_cards("models", ModelCard),
        datasets=_load_cards("datasets", DatasetCard),
        recipes=recipes,
    )

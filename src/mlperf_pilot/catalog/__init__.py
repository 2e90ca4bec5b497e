"""The catalog: what each model and dataset is, as data (YAML) plus its typed shape."""

from mlperf_pilot.catalog.cards import (
    DatasetCard,
    DemoPhoto,
    ModelCard,
    ModelFormat,
    PostprocessSpec,
    PreprocessSpec,
)
from mlperf_pilot.catalog.loader import Catalog, load_catalog

__all__ = [
    "Catalog",
    "DatasetCard",
    "DemoPhoto",
    "ModelCard",
    "ModelFormat",
    "PostprocessSpec",
    "PreprocessSpec",
    "load_catalog",
]

"""Optional packages, imported only by the commands that need them."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlperf_pilot.errors import MissingDependencyError


def import_extra(*modules: str, package: str, extra: str | None, purpose: str) -> ModuleType:
    """Import ``modules`` (e.g. ``"mlflow", "mlflow.entities"``) and return the first;
    MissingDependencyError naming ``package`` and the mlperf-pilot ``extra`` that
    installs it when one is missing."""
    try:
        found = [importlib.import_module(name) for name in modules]
    except ImportError as exc:
        raise MissingDependencyError(package, extra, purpose) from exc
    return found[0]


__all__ = ["import_extra"]

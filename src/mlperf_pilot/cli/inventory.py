"""Rows for `mlperf-pilot list`: the catalog joined with the cache, the installed
backends and the SUT kinds (pure functions of their inputs)."""

from __future__ import annotations

from typing import Any

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.backends import BACKENDS, backend_class
from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.sut.registry import SUT_KINDS

Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def _cached_names(cache: AssetCache, kind: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in cache.entries(kind=kind):
        if entry.is_intact():
            found[entry.name] = "yours" if entry.external else "cached"
    return found


def model_rows(cache: AssetCache) -> Rows:
    cached = _cached_names(cache, "model")
    rows = []
    for card in load_catalog().models:
        have = sorted({state for n, state in cached.items()
                       if n == card.name or n.startswith(card.name + ":")})
        rows.append((
            card.name, card.task, card.mlperf_model, card.dataset,
            ", ".join(f.id for f in card.formats), card.status + (" (demo)" if card.demo else ""),
            ", ".join(have) if have else "no",
        ))
    return ("Name", "Task", "MLPerf model", "Dataset", "Formats", "Status", "Local"), rows


def dataset_rows(cache: AssetCache) -> Rows:
    cached = _cached_names(cache, "dataset")
    rows = []
    for card in load_catalog().datasets:
        size = str(card.size) if card.size else ("built" if card.builder else "-")
        rows.append((card.name, card.task, card.layout, size, cached.get(card.name, "no")))
    return ("Name", "Task", "Layout", "Images", "Local"), rows


def backend_rows(cache: AssetCache) -> Rows:
    """One row per backend, built-in or from another package's entry point; a backend
    whose entry point cannot be loaded is a row that says why, not a failed listing."""
    rows = []
    for entry in BACKENDS.entries():
        try:
            cls = backend_class(entry.name)
        except ConfigError as exc:  # the cause only: the origin column names the package
            cause = exc.__cause__
            why = (f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
                   if cause is not None else exc.message)
            rows.append((entry.name, entry.origin, f"no, cannot be loaded ({why})", "-", "-",
                         "-", "-"))
            continue
        installed = cls.is_installed()
        try:
            devices = [d.value for d in cls.available_devices()] if installed else []
        except Exception as exc:  # a broken install is reported, not fatal
            devices = [f"error: {exc}"]
        rows.append((
            entry.name, entry.origin,
            "yes" if installed else f"no (pip install 'mlperf-pilot[{cls.extra}]')"
            if cls.extra else ("yes" if installed else "no"),
            cls.version() or "-", ", ".join(cls.formats), ", ".join(d.value for d in cls.devices),
            ", ".join(devices) or "-",
        ))
    return ("Backend", "Origin", "Installed", "Version", "Formats", "Devices", "Usable here"), rows


def sut_rows(cache: AssetCache) -> Rows:
    """One row per SUT kind (``sut.kind``): where it comes from and the module that
    provides it, read from the registry without importing any plugin."""
    rows = []
    for entry in SUT_KINDS.entries():
        target = entry.target if isinstance(entry.target, str) else _qualified(entry.target)
        rows.append((entry.name, entry.origin, target))
    return ("Kind", "Origin", "Provided by"), rows


def _qualified(obj: object) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"

"""Rows for `mlperf-pilot list`: the catalog joined with the cache and the installed
backends (pure functions of their inputs)."""

from __future__ import annotations

from typing import Any

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.backends import backend_class, backend_names
from mlperf_pilot.catalog import load_catalog

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
    rows = []
    for name in backend_names():
        cls = backend_class(name)
        installed = cls.is_installed()
        try:
            devices = [d.value for d in cls.available_devices()] if installed else []
        except Exception as exc:  # a broken install is reported, not fatal
            devices = [f"error: {exc}"]
        rows.append((
            name, "yes" if installed else f"no (pip install 'mlperf-pilot[{cls.extra}]')"
            if cls.extra else ("yes" if installed else "no"),
            cls.version() or "-", ", ".join(cls.formats), ", ".join(d.value for d in cls.devices),
            ", ".join(devices) or "-",
        ))
    return ("Backend", "Installed", "Version", "Formats", "Devices", "Usable here"), rows

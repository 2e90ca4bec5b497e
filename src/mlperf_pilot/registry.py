"""One registry idiom for every plugin kind (backends, SUT kinds, decoders, builders,
converters, accuracy metrics, dataset layouts).

A :class:`Registry` maps a short name (the ``kind`` or name a config uses) to a
``"module:attribute"`` target that is imported only when the name is chosen, so an
unused plugin never loads its framework. A registry with an entry-point ``group``
(``mlperf_pilot.backends``, ``mlperf_pilot.suts``) also lists the entry points of
other installed packages, so a vendor adds a runtime by publishing a package, without
forking. Plugins registered in code (``register``) win over built-ins, which win over
entry points: a built-in name cannot be shadowed by an installed package (its entry
point of that name is ignored). When two packages offer one name, the first on
``sys.path`` wins. An unknown name is always an
:class:`~mlperf_pilot.errors.UnknownPluginError` listing the valid ones; an entry point
that cannot be loaded is a one-line :class:`~mlperf_pilot.errors.ConfigError` naming
its package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mlperf_pilot.errors import ConfigError, UnknownPluginError

T = TypeVar("T")

BUILTIN = "built-in"


@dataclass(frozen=True)
class Entry:
    """Where one registered name comes from."""

    name: str
    target: str | object  # "module:attr", or the object itself (registered in code)
    origin: str  # "built-in", "registered", or "entry point of <distribution>"


class Registry(Generic[T]):
    """Names -> lazily imported plugins of one kind."""

    def __init__(self, kind: str, builtin: dict[str, str], *, group: str | None = None
                 ) -> None:
        self.kind = kind  # the word the errors use: "backend", "SUT kind", ...
        self.group = group  # the entry-point group, if other packages may add plugins
        self._builtin = dict(builtin)
        self._registered: dict[str, object] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None

    # ------------------------------------------------------------------------- lookup

    def entries(self) -> list[Entry]:
        """Every name, sorted, with where it comes from."""
        found: dict[str, Entry] = {}
        for name, ep in self._discovered().items():
            found[name] = Entry(name, ep.value, f"entry point of {_dist_name(ep)}")
        for name, target in self._builtin.items():
            found[name] = Entry(name, target, BUILTIN)
        for name, obj in self._registered.items():
            found[name] = Entry(name, obj, "registered")
        return [found[name] for name in sorted(found)]

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._registered or name in self._builtin or name in self._discovered())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def origin(self, name: str) -> str:
        for entry in self.entries():
            if entry.name == name:
                return entry.origin
        raise self.unknown(name)

    def get(self, name: str) -> T:
        """The plugin registered as ``name``, imported on first use."""
        if name in self._registered:
            return self._registered[name]  # type: ignore[return-value]
        if name in self._loaded:
            return self._loaded[name]
        if name in self._builtin:
            plugin = _import(self._builtin[name], self.kind, name)
        else:
            ep = self._discovered().get(name)
            if ep is None:
                raise self.unknown(name)
            try:
                plugin = ep.load()
            except Exception as exc:  # anything a third-party module raises on import
                dist = _dist_name(ep)
                raise ConfigError(
                    f"the {self.kind} {name!r} (entry point {ep.value} of {dist}) cannot "
                    f"be loaded: {type(exc).__name__}: {_first_line(exc)}",
                    hint=f"reinstall {dist}, or uninstall it",
                ) from exc
        self._loaded[name] = plugin
        return plugin

    def unknown(self, name: str) -> UnknownPluginError:
        return UnknownPluginError(self.kind, name, self.names())

    # --------------------------------------------------------------------- registering

    def register(self, name: str, plugin: T) -> None:
        """Add (or replace) a plugin in this process (tests, embedding programs)."""
        self._registered[name] = plugin
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)
        self._loaded.pop(name, None)

    def refresh(self) -> None:
        """Forget discovered entry points (after packages were installed)."""
        importlib.invalidate_caches()
        self._entry_points = None
        self._loaded = {k: v for k, v in self._loaded.items() if k in self._builtin}

    def _discovered(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self.group is None:
            return {}
        if self._entry_points is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            for ep in importlib.metadata.entry_points(group=self.group):  # sys.path order
                if ep.name not in self._builtin and ep.name not in found:
                    found[ep.name] = ep
            self._entry_points = found
        return self._entry_points


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None and dist.metadata is not None else None
    return name or "an unnamed package"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _import(target: str, kind: str, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr) if attr else module
    except AttributeError:  # a broken built-in registration is a bug, not bad input
        raise RuntimeError(f"{kind} {name!r}: {target} does not exist") from None


__all__ = ["BUILTIN", "Entry", "Registry"]

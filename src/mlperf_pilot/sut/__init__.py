"""Systems under test. ``base`` holds what every SUT shares (the ``Sut`` protocol,
``Responder``, ``Predictor``, ``BatchingSut``); ``local`` the in-process backend SUT;
``registry`` the SUT kinds. Names are imported from here lazily (numpy loads on use)."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "NAN_ERROR": "base", "SKIPPED_ERROR": "base", "BatchingSut": "base",
    "Completion": "base", "Predictor": "base", "Responder": "base", "Sut": "base",
    "SutDescription": "base", "SutStats": "base",
    "BackendPredictor": "local", "LocalSut": "local",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = sorted(_HOMES)

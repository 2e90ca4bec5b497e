"""Reading a submission tree: folder listings and JSON files that may be missing or bad.

A checker must report a broken tree, not crash on it: a missing folder lists as empty,
an unreadable or non-JSON file reads as ``None``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def dirs(path: Path) -> list[str]:
    """The names of the folders in ``path``, sorted ([] if it is not a folder)."""
    return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def files(path: Path) -> list[str]:
    """The names of the files in ``path``, sorted ([] if it is not a folder)."""
    return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []


def read_json(path: Path) -> Any:
    """The parsed JSON in ``path``, or None if it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

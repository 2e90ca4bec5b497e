"""Tiny installed-looking packages for plugin tests: a module plus a ``.dist-info``
folder with ``METADATA`` and ``entry_points.txt``, written into a folder that a test puts
on ``sys.path`` (or ``PYTHONPATH``) instead of pip-installing anything into the venv."""

from __future__ import annotations

import re
from pathlib import Path


def write_plugin_dist(site: Path, dist: str, entry_points: dict[str, dict[str, str]],
                      modules: dict[str, str] | None = None, version: str = "0.1") -> Path:
    """``site/<dist>-<version>.dist-info`` declaring ``entry_points`` ({group: {name:
    "module:attr"}}), plus ``site/<module>.py`` for each of ``modules`` ({module: source}).
    Returns the dist-info folder."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{re.sub(r'[-_.]+', '_', dist)}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    sections = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
                for group, eps in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    return info

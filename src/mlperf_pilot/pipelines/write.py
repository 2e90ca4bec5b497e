"""Manifests to files: one YAML file per object, named and ordered for ``kubectl apply``.

``NN-<kind>-<name>.yaml``: NN is the object's place in the renderer's list, so ``kubectl
apply -f DIR`` (which reads a folder's files in name order) creates the ServiceAccount and
the claim before what uses them. Keys keep the renderer's order; multi-line strings
(scripts) are literal blocks. The same input writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.errors import ConfigError


class _Dumper(yaml.SafeDumper):
    """Block style, scripts as ``|`` literals, no anchors (every object reads alone)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100, allow_unicode=True)


def file_name(index: int, obj: dict[str, Any]) -> str:
    return f"{index:02d}-{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def write_manifests(objects: Sequence[dict[str, Any]], out: Path, *, force: bool = False
                    ) -> list[Path]:
    """Write the objects under ``out``; a folder that holds YAML already is refused unless
    ``force`` (then its YAML files are replaced, so no stale object stays behind)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder", hint="give --out a folder")
    old = sorted(out.glob("*.yaml")) + sorted(out.glob("*.yml")) if out.is_dir() else []
    if old and not force:
        raise ConfigError(f"{out} holds manifests already ({old[0].name}, ...)",
                          hint="give another --out, or --force to replace its YAML files")
    out.mkdir(parents=True, exist_ok=True)
    for path in old:
        path.unlink()
    written = []
    for index, obj in enumerate(objects):
        path = out / file_name(index, obj)
        path.write_text(dump(obj), encoding="utf-8")
        written.append(path)
    return written


__all__ = ["dump", "file_name", "write_manifests"]

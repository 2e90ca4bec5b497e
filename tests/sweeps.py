"""A tiny sweep file for the sweep tests: Offline performance of a small real ONNX model
(tests/builders.py) on the colour photos, its points the values of ``matrix``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def write_tiny_sweep(folder: Path, name: str, model: Path, dataset: Path,
                     matrix: Mapping[str, Sequence[object]], duration_ms: int = 300) -> Path:
    """``folder``/sweep.yaml, named ``name``, one point per product of ``matrix``."""
    lines = "".join(f"  {key}: [{', '.join(str(v) for v in values)}]\n"
                    for key, values in matrix.items())
    path = folder / "sweep.yaml"
    path.write_text(f"""\
name: {name}
base:
  scenarios: [Offline]
  modes: [performance]
  test_duration_ms: {duration_ms}
  sut: {{model_path: {model}}}
  dataset_path: {dataset}
matrix:
{lines}""")
    return path

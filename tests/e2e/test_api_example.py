"""The Python API example of ``mlperf_pilot``'s docstring runs as written and prints what
the CLI demo shows: each scenario's accuracy from accuracy.txt, its headline metric."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import mlperf_pilot


def example_code() -> str:
    """The code block of the module docstring (the indented lines after ``::``)."""
    doc = mlperf_pilot.__doc__ or ""
    block = doc.split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break  # the prose after the block
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def test_the_docstring_example_runs_as_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = example_code()
    assert "run_benchmark(RunSpec(" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "mlperf_pilot.__doc__", "exec"), {"__name__": "__example__"})
    out = capsys.readouterr().out
    # the demo card's defaults: Offline and SingleStream, accuracy and performance
    for scenario in ("Offline", "SingleStream"):
        assert re.search(rf"^{scenario} accuracy VALID accuracy=\d+\.\d{{3}}%, good=\d+, "
                         r"total=\d+$", out, re.M), out
    assert re.search(r"^Offline performance VALID .+ [\d.]+ Samples/s$", out, re.M), out
    assert re.search(r"^SingleStream performance VALID .+ [\d.]+ ms$", out, re.M), out
    assert re.search(r"^ok - results in \S*results$", out, re.M), out
    assert (tmp_path / "results").is_dir()  # ./results, as the CLI's default

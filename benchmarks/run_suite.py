#!/usr/bin/env python3
"""Run the harness benchmark suite and record the figures.

    python benchmarks/run_suite.py                 # everything but scaling (about 15 min)
    python benchmarks/run_suite.py scaling          # batch size x threads (about 25 min)
    python benchmarks/run_suite.py offline single --quick

Writes benchmarks/results/<name>.json and prints the markdown tables that
benchmarks/README.md records. Same as `mlperf-pilot bench ... --out FILE`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlperf_pilot.cli.main import main

if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    out = Path(__file__).parent / "results" / f"{'-'.join(names) or 'suite'}.json"
    out.parent.mkdir(exist_ok=True)
    raise SystemExit(main(["bench", *names, *flags, "--out", str(out)]))

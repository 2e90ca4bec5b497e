"""mlperf-pilot: run MLPerf Inference benchmarks end to end.

The public Python API::

    from mlperf_pilot import RunSpec, run_benchmark
    summary = run_benchmark(RunSpec(model="efficientnet-lite0-demo"))
    for record in summary.records:
        print(record.scenario, record.mode, record.status, record.metric_value)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlperf_pilot.config import Mode, RunSpec, Scenario
    from mlperf_pilot.engine import RunSummary, run_benchmark

_LAZY = {
    "RunSpec": "mlperf_pilot.config",
    "Scenario": "mlperf_pilot.config",
    "Mode": "mlperf_pilot.config",
    "run_benchmark": "mlperf_pilot.engine",
    "RunSummary": "mlperf_pilot.engine",
    "plan_run": "mlperf_pilot.engine",
    "RunRecord": "mlperf_pilot.results.records",
    "load_catalog": "mlperf_pilot.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlperf_pilot' has no attribute {name!r}")


__all__ = ["Mode", "RunRecord", "RunSpec", "RunSummary", "Scenario", "__version__",
           "load_catalog", "plan_run", "run_benchmark"]

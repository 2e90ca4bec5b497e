"""mlperf-pilot: run MLPerf Inference benchmarks end to end.

The public Python API; this runs what ``mlperf-pilot run`` runs (the demo card's
defaults: Offline and SingleStream, accuracy and performance, results in ./results)::

    from mlperf_pilot import RunSpec, run_benchmark

    summary = run_benchmark(RunSpec(model="efficientnet-lite0-demo"))
    for record in summary.records:
        if record.accuracy is not None:  # an accuracy run: what the reference script prints
            shown = record.accuracy.text.strip()
        else:  # a performance run: its headline metric
            shown = f"{record.metric_name} {record.metric_value:.2f} {record.metric_unit}"
        print(record.scenario.value, record.mode.value, record.status.value, shown)
    print("ok" if summary.ok else "not ok", "- results in", summary.results_dir)

(``tests/e2e/test_api_example.py`` runs it as written.)
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

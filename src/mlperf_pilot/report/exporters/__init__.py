"""Experiment-tracker exporters (`results export --to NAME`), keyed by name; an
exporter's module, and its tracker's library, load only when chosen.

Built-in: ``mlflow`` (an MLflow tracking server) and ``wandb`` (W&B runs written
offline). Other installed packages add theirs through the entry-point group
``mlperf_pilot.exporters`` (``name = "module:ExporterClass"``, a subclass of
:class:`~mlperf_pilot.report.exporters.base.Exporter`).
"""

from __future__ import annotations

from typing import Any

from mlperf_pilot.registry import Registry
from mlperf_pilot.report.exporters.base import ExportedTest, Exporter, ExportSummary

EXPORTERS: Registry[type[Exporter]] = Registry("exporter", {
    "mlflow": "mlperf_pilot.report.exporters.mlflow_export:MlflowExporter",
    "wandb": "mlperf_pilot.report.exporters.wandb_export:WandbExporter",
}, group="mlperf_pilot.exporters")


def make_exporter(name: str, **options: Any) -> Exporter:
    """The exporter registered as ``name``, built with its options (UnknownPluginError
    listing the valid names for another)."""
    return EXPORTERS.get(name)(**options)


__all__ = ["EXPORTERS", "ExportSummary", "ExportedTest", "Exporter", "make_exporter"]

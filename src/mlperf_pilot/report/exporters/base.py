"""What every experiment-tracker exporter shares: the base class, its summary, and the
one mapping of a stored test to a tracker's run.

A stored test (``results.store.StoredTest``, or anything :class:`StoredTestLike`)
becomes one :class:`TrackedRun`:

- ``params``: the resolved settings, flattened to dotted keys (``sut.max_batch_size``),
  each value as text (strings as they are, everything else as JSON: ``8``, ``null``,
  ``["SingleStream"]``);
- ``metrics``: the headline metric (``metric_value``, its name and unit in the tags),
  LoadGen's latency percentiles and mean in ms, the throughput LoadGen measured, the
  query count, the accuracy (%, and its target), ``samples_failed`` and the duration;
- ``tags``: what the test was and concluded: test id, run id, kind, status and reasons,
  system, model, SUT kind, backend, device, scenario, mode, execution mode, the command,
  host and the versions (``version.<package>``);
- ``artifacts``: the files of the test's LoadGen log folder (``record.log_dir``).

No secret leaves: a setting, tag or version whose key names a token, secret, password,
credential, API key or authorization (:func:`is_secret_key`) is left out of all three.
Exporters are pure of the store: they take the tests and read only the files under each
``log_dir``.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlperf_pilot.report.tables import StoredTestLike, flatten, percentile_label, percentiles_of

SECRET_KEY = re.compile(r"token|secret|passw(or)?d|credential|api[_-]?key|authori[sz]ation"
                        r"|private[_-]?key|access[_-]?key|session[_-]?key",
                        re.IGNORECASE)
NS_PER_MS = 1e6


def is_secret_key(key: str) -> bool:
    """Whether a setting's (dotted) key may name a secret: such keys are never exported."""
    return SECRET_KEY.search(key) is not None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _public(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in flat.items() if not is_secret_key(key)}


def public_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings, nested as they are, without any key that may name a secret."""
    kept: dict[str, Any] = {}
    for key, value in settings.items():
        if is_secret_key(str(key)):
            continue
        kept[str(key)] = public_settings(value) if isinstance(value, Mapping) else value
    return kept


@dataclass(frozen=True)
class TrackedRun:
    """One stored test as a tracker's run (see the module's docstring)."""

    test_id: str
    run_id: str
    status: str
    started_ms: int
    finished_ms: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    settings: dict[str, Any]  # nested, secrets left out (W&B's config keeps the nesting)
    log_dir: Path
    artifacts: tuple[Path, ...]


def metrics_of(test: StoredTestLike) -> dict[str, float]:
    record = test.record
    metrics: dict[str, float] = {}

    def put(key: str, value: float | int | None) -> None:
        if value is not None:
            metrics[key] = float(value)

    put("metric_value", record.metric_value)
    for key, value in percentiles_of(record).items():
        put(f"latency_{percentile_label(key)}_ms", value / NS_PER_MS)
    loadgen = record.loadgen
    if loadgen is not None:
        if loadgen.mean_latency_ns is not None:
            put("latency_mean_ms", loadgen.mean_latency_ns / NS_PER_MS)
        put("samples_per_second", loadgen.samples_per_second)
        put("completed_samples_per_second", loadgen.completed_samples_per_sec)
        put("qps_with_loadgen_overhead", loadgen.qps_with_loadgen_overhead)
        put("qps_without_loadgen_overhead", loadgen.qps_without_loadgen_overhead)
        put("query_count", loadgen.query_count)
    if record.accuracy is not None:
        put("accuracy", record.accuracy.value)
        put("accuracy_target", record.accuracy.target)
    put("samples_failed", record.samples_failed)
    put("duration_s", record.duration_s)
    put("peak_rss_mb", record.peak_rss_mb)
    return metrics


def tags_of(test: StoredTestLike) -> dict[str, str]:
    record = test.record
    provenance = test.provenance
    tags: dict[str, Any] = {
        "test_id": test.test_id, "run_id": record.run_id, "kind": test.kind,
        "status": record.status.value, "reasons": "; ".join(record.reasons),
        "system": record.system, "model": record.model, "mlperf_model": record.mlperf_model,
        "sut_kind": record.sut_kind or "local", "backend": record.backend,
        "backend_version": record.backend_version, "device": record.device,
        "device_in_use": record.device_in_use, "scenario": record.scenario.value,
        "mode": record.mode.value,
        "execution_mode": record.execution_mode.value if record.execution_mode else None,
        "submittable": record.submittable,
        "not_submittable": "; ".join(record.not_submittable),
        "metric_name": record.metric_name, "metric_unit": record.metric_unit,
        "accuracy_metric": record.accuracy.metric if record.accuracy else None,
        "command": provenance.get("command"),
        "tool_version": provenance.get("tool_version"),
    }
    host = provenance.get("host")
    if isinstance(host, Mapping) and host.get("name"):
        tags["host"] = host["name"]
    versions = provenance.get("versions")
    if isinstance(versions, Mapping):
        packages = versions.get("packages")
        if isinstance(packages, Mapping):
            tags.update({f"version.{name}": value for name, value in packages.items()})
        tags.update({f"version.{name}": value for name, value in versions.items()
                     if name != "packages" and not isinstance(value, Mapping)})
    return {key: _text(value) for key, value in _public(tags).items()
            if value is not None and value != ""}


def tracked_run(test: StoredTestLike) -> TrackedRun:
    """The tracker's view of one stored test (see the module's docstring)."""
    record = test.record
    log_dir = Path(record.log_dir)
    artifacts = tuple(sorted(path for path in log_dir.iterdir() if path.is_file())) \
        if log_dir.is_dir() else ()
    params = {key: _text(value) for key, value in _public(flatten(test.settings)).items()}
    return TrackedRun(
        test_id=test.test_id, run_id=record.run_id, status=record.status.value,
        started_ms=int(record.started.timestamp() * 1000),
        finished_ms=int(record.finished.timestamp() * 1000) if record.finished else None,
        params=params, metrics=metrics_of(test), tags=tags_of(test),
        settings=public_settings(test.settings), log_dir=log_dir, artifacts=artifacts)


# ------------------------------------------------------------------------- the axis


@dataclass(frozen=True)
class ExportedTest:
    """What became of one test: ``ref`` is the tracker's id of its run (an MLflow run id,
    a W&B run folder); ``skipped`` says it was there already (an earlier export)."""

    test_id: str
    ref: str
    skipped: bool = False


@dataclass(frozen=True)
class ExportSummary:
    """What one export did, for the CLI to print."""

    exporter: str  # the registry's name: "mlflow", "wandb"
    destination: str  # the tracking URI and experiment, the W&B folder
    tests: tuple[ExportedTest, ...] = ()
    notes: tuple[str, ...] = ()  # what to do next ("wandb sync DIR uploads them")
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exported(self) -> list[ExportedTest]:
        return [test for test in self.tests if not test.skipped]

    @property
    def skipped(self) -> list[ExportedTest]:
        return [test for test in self.tests if test.skipped]

    def to_json(self) -> dict[str, Any]:
        return {"exporter": self.exporter, "destination": self.destination,
                "exported": [{"test_id": t.test_id, "ref": t.ref} for t in self.exported],
                "skipped": [{"test_id": t.test_id, "ref": t.ref} for t in self.skipped],
                "notes": list(self.notes), **self.details}


class Exporter(ABC):
    """One experiment tracker. A subclass is registered by name in
    :data:`mlperf_pilot.report.exporters.EXPORTERS`; its constructor takes the tracker's
    options (keyword-only); :meth:`export` logs the tests and says what it did. Its
    library is imported inside :meth:`export` (MissingDependencyError naming ``extra``
    when absent), never on import."""

    name: ClassVar[str]
    extra: ClassVar[str]  # the pip extra that brings its library

    @abstractmethod
    def export(self, tests: Sequence[StoredTestLike]) -> ExportSummary:
        """Log each test as one run; a test exported before (to the same destination)
        is skipped, not duplicated."""


__all__ = ["ExportSummary", "ExportedTest", "Exporter", "TrackedRun", "is_secret_key",
           "metrics_of", "public_settings", "tags_of", "tracked_run"]

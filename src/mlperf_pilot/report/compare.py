"""`results compare`: N stored tests side by side, the first one the baseline (pure
functions of stored tests).

For each test: the headline metric and its unit, its ratio to the first test's, the
latency percentiles, the accuracy; then the settings that differ between the tests and
the versions that differ (their provenance).

**Regression.** A test is flagged when its metric is worse than the first test's by more
than the run-to-run noise the store has seen for that *configuration*. A configuration
is what decides the number (:func:`configuration_of`): model, SUT kind, backend, device,
scenario, mode, system, and the settings that change what is measured — not the ones
that only say where files go or how long LoadGen runs (:data:`UNRELATED_SETTINGS`).
The noise of a configuration (:func:`noise_of`) is the spread of the metric over the
store's VALID performance tests of it: ``max / min - 1``. Two tests of one configuration
therefore never flag each other; with fewer than :data:`MIN_NOISE_TESTS` such tests the
noise is :data:`DEFAULT_NOISE` (5 %), and the comparison says which figure it used and
from how many tests. When baseline and candidate are of different configurations, a
measured figure is used over the default, and of two measured figures the larger.

"Worse" follows the metric: SingleStream/MultiStream report a latency (ms: lower is
better), Offline/Server a throughput (samples/s: higher is better); a test is
``worse_by`` ``first / value - 1`` (throughput) or ``value / first - 1`` (latency), the
same ratio form as the spread. Tests of different metrics (another scenario or unit)
are shown but not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from mlperf_pilot.report.tables import (
    SHOWN_PERCENTILES,
    ListRow,
    StoredTestLike,
    flatten,
    list_row,
    lower_is_better,
    percentiles_of,
)
from mlperf_pilot.vocab import Mode, RunStatus

DEFAULT_NOISE = 0.05  # assumed run-to-run noise of a configuration seen fewer times
MIN_NOISE_TESTS = 3  # VALID performance tests of a configuration to measure its noise

# settings (dotted keys, or prefixes ending in ".") that do not change what a test
# measures: where files go, which scenarios/modes a run made, how long LoadGen ran
UNRELATED_SETTINGS: tuple[str, ...] = (
    "results_dir", "store", "cache_dir", "targets_file", "preprocess_workers", "max_reruns",
    "compliance", "compliance_tests", "scenarios", "modes", "round", "execution_mode",
    "test_duration_ms", "system_name", "dataset_path", "allow_unverified_download",
    "loadgen.min_duration_ms", "loadgen.max_duration_ms", "loadgen.min_query_count",
    "loadgen.max_query_count", "sut.token_file", "trace",
)
# provenance keys that are not versions: the command, where the logs are, what the run
# resolved (its paths, estimates, layout; its backend version is shown on its own),
# a compliance verdict
_NOT_VERSIONS = ("command", "run_id", "started", "log_paths", "resolved", "compliance")


def _unrelated(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in UNRELATED_SETTINGS)


def configuration_of(test: StoredTestLike) -> tuple[Any, ...]:
    """What must be equal for two tests to be runs of one configuration."""
    record = test.record
    settings = tuple((key, repr(value)) for key, value in flatten(test.settings).items()
                     if not _unrelated(key))
    return (record.model, record.sut_kind or "local", record.backend, record.device,
            record.scenario.value, record.mode.value, record.system, settings)


@dataclass(frozen=True)
class Noise:
    """The run-to-run noise figure a regression was judged against."""

    fraction: float  # 0.05 = 5 %
    tests: int  # VALID performance tests of the configuration in the store
    measured: bool  # False: DEFAULT_NOISE, too few tests to measure it

    def describe(self) -> str:
        what = "test" if self.tests == 1 else "tests"
        if self.measured:
            return (f"{self.fraction:.1%} (spread of {self.tests} VALID performance {what} "
                    f"of this configuration)")
        return (f"{self.fraction:.1%} (default: {self.tests} VALID performance {what} of "
                f"this configuration, fewer than {MIN_NOISE_TESTS})")

    def to_json(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "tests": self.tests, "measured": self.measured,
                "text": self.describe()}


def _measurable(test: StoredTestLike) -> bool:
    record = test.record
    return (record.status is RunStatus.VALID and record.mode is Mode.PERFORMANCE
            and record.metric_value is not None and record.metric_value > 0)


def noise_of(test: StoredTestLike, history: Iterable[StoredTestLike]) -> Noise:
    """The spread of the metric over the VALID performance tests of ``test``'s
    configuration in ``history`` (``test`` counted too when it is one)."""
    key = configuration_of(test)
    peers: dict[str, float] = {}
    for other in (*history, test):
        if other.test_id not in peers and _measurable(other) \
                and configuration_of(other) == key:
            peers[other.test_id] = float(other.record.metric_value or 0.0)
    if len(peers) < MIN_NOISE_TESTS:
        return Noise(DEFAULT_NOISE, len(peers), measured=False)
    values = peers.values()
    return Noise(max(values) / min(values) - 1.0, len(peers), measured=True)


# ---------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Column(ListRow):
    """One test of a comparison: its `results list` row and how it compares."""

    lower_is_better: bool = False
    percentiles_ns: dict[str, float] = field(default_factory=dict)
    ratio: float | None = None  # metric / the first test's metric (None: not comparable)
    worse_by: float | None = None  # > 0: worse than the first test, < 0: better
    noise: Noise | None = None  # what worse_by was judged against
    regression: bool | None = None  # None: the first test, or not comparable
    note: str | None = None  # why it is not compared

    def to_json(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id, "model": self.model, "sut": self.sut,
            "device": self.device, "scenario": self.scenario, "mode": self.mode,
            "status": self.status, "metric_name": self.metric_name,
            "metric_value": self.metric_value, "metric_unit": self.metric_unit,
            "better": "lower" if self.lower_is_better else "higher",
            "latency_percentiles_ns": self.percentiles_ns, "accuracy": self.accuracy,
            "accuracy_metric": self.accuracy_metric, "ratio": self.ratio,
            "worse_by": self.worse_by,
            "noise": self.noise.to_json() if self.noise else None,
            "regression": self.regression, "note": self.note,
        }


@dataclass(frozen=True)
class Difference:
    """A setting or version whose values differ between the tests (None: absent)."""

    key: str
    values: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "values": list(self.values)}


@dataclass(frozen=True)
class Comparison:
    columns: tuple[Column, ...]
    percentiles: tuple[str, ...]  # LoadGen's keys any column has, in SHOWN_PERCENTILES order
    settings: tuple[Difference, ...]
    versions: tuple[Difference, ...]

    @property
    def regressions(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.regression)

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.columns[0].test_id if self.columns else None,
                "tests": [column.to_json() for column in self.columns],
                "settings_that_differ": [d.to_json() for d in self.settings],
                "versions_that_differ": [d.to_json() for d in self.versions],
                "regressions": [column.test_id for column in self.regressions]}


def compare(tests: Sequence[StoredTestLike],
            history: Iterable[StoredTestLike] = ()) -> Comparison:
    """``tests`` side by side, ``tests[0]`` the baseline; ``history``: the stored tests
    the noise of each configuration is measured over (the compared tests count too)."""
    history = tuple(history)
    columns: list[Column] = []
    first = tests[0] if tests else None
    for index, test in enumerate(tests):
        column = _column(test)
        if index > 0 and first is not None:
            column = _judged(column, first, test, history)
        elif first is not None and _measurable(test):
            column = _replace(column, noise=noise_of(test, history))
        columns.append(column)
    present = {key for column in columns for key in column.percentiles_ns}
    shown = tuple(key for key in SHOWN_PERCENTILES if key in present)
    return Comparison(tuple(columns), shown,
                      _differences([flatten(test.settings) for test in tests]),
                      _differences([_versions(test) for test in tests]))


def _column(test: StoredTestLike) -> Column:
    row = list_row(test)
    return Column(**{f.name: getattr(row, f.name) for f in fields(ListRow)},
                  lower_is_better=lower_is_better(test.record),
                  percentiles_ns=percentiles_of(test.record))


def _replace(column: Column, **changes: Any) -> Column:
    from dataclasses import replace

    return replace(column, **changes)


def _judged(column: Column, first: StoredTestLike, test: StoredTestLike,
            history: tuple[StoredTestLike, ...]) -> Column:
    base, this = first.record, test.record
    if base.metric_value is None or this.metric_value is None:
        return _replace(column, note="no headline metric to compare")
    if (base.metric_unit, base.metric_name) != (this.metric_unit, this.metric_name) \
            or lower_is_better(base) != lower_is_better(this):
        return _replace(column, note="another metric than the first test's: not compared")
    if base.metric_value <= 0 or this.metric_value <= 0:
        return _replace(column, note="a metric of 0: not compared")
    ratio = this.metric_value / base.metric_value
    worse_by = ratio - 1.0 if lower_is_better(base) else 1.0 / ratio - 1.0
    # a measured figure over the default; of two measured (or two defaults) the larger
    figures = (noise_of(first, history), noise_of(test, history))
    noise = max(figures, key=lambda figure: (figure.measured, figure.fraction))
    return _replace(column, ratio=ratio, worse_by=worse_by, noise=noise,
                    regression=worse_by > noise.fraction)


def _versions(test: StoredTestLike) -> dict[str, Any]:
    record = test.record
    found = {key: value for key, value in flatten(test.provenance).items()
             if not any(key == name or key.startswith(name + ".") for name in _NOT_VERSIONS)}
    found[f"backend {record.backend}"] = record.backend_version
    if record.loadgen is not None and record.loadgen.loadgen_version:
        found["loadgen (as logged)"] = record.loadgen.loadgen_version
    return found


def _differences(flat: Sequence[Mapping[str, Any]]) -> tuple[Difference, ...]:
    keys = sorted({key for mapping in flat for key in mapping})
    differing = []
    for key in keys:
        values = tuple(mapping.get(key) for mapping in flat)
        if len({repr(value) for value in values}) > 1:
            differing.append(Difference(key, values))
    return tuple(differing)


__all__ = ["DEFAULT_NOISE", "MIN_NOISE_TESTS", "UNRELATED_SETTINGS", "Column", "Comparison",
           "Difference", "Noise", "compare", "configuration_of", "noise_of"]

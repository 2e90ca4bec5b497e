"""Where a run's files go; the same shape as a submission's results tree::

    <results-dir>/<system>/<model>/<scenario>/
        accuracy/{mlperf_log_summary.txt, mlperf_log_detail.txt,
                  mlperf_log_accuracy.json, accuracy.txt}
        performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt, ...}
        user.conf            the LoadGen overrides of this scenario
        run_spec.json        the resolved RunSpec
        versions.json        every component's version
        records/<mode>.json  what mlperf-pilot concluded (status, metric, accuracy, errors)
        records/accuracy.user.conf   only when an accuracy run was made beside a kept
                             performance run (user.conf describes the performance run)

A run writes a scenario in ``.<scenario>.staging/`` and renames it into place when the
scenario is finished; an interrupted rerun's partial results go to
``.<scenario>.interrupted/`` (see :mod:`mlperf_pilot.results.staging`).

Only LoadGen's files and accuracy.txt go inside ``accuracy/`` and ``performance/``, so
a submission tree is built by copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.config import Mode, Scenario


@dataclass(frozen=True)
class ScenarioPaths:
    root: Path  # <results>/<system>/<model>/<scenario>

    @classmethod
    def of(cls, results_dir: Path, system: str, model: str, scenario: Scenario) -> ScenarioPaths:
        return cls(Path(results_dir) / system / model / scenario.value)

    @property
    def scenario(self) -> str:
        """The scenario's name, also for the staging folder ``.<scenario>.staging``."""
        name = self.root.name
        return name.split(".")[1] if name.startswith(".") else name

    def log_dir(self, mode: Mode) -> Path:
        if mode is Mode.ACCURACY:
            return self.root / "accuracy"
        return self.root / "performance" / "run_1"

    @property
    def user_conf(self) -> Path:
        return self.root / "user.conf"

    @property
    def accuracy_user_conf(self) -> Path:
        """The user.conf of an accuracy run made beside a kept performance run (whose
        own user.conf stays in place); see results.staging."""
        return self.root / "records" / "accuracy.user.conf"

    def user_conf_for(self, mode: Mode) -> Path:
        """The user.conf a test of ``mode`` runs with."""
        if mode is Mode.ACCURACY and self.accuracy_user_conf.is_file():
            return self.accuracy_user_conf
        return self.user_conf

    @property
    def run_spec(self) -> Path:
        return self.root / "run_spec.json"

    @property
    def versions(self) -> Path:
        return self.root / "versions.json"

    def record(self, mode: Mode) -> Path:
        return self.root / "records" / f"{mode.value}.json"

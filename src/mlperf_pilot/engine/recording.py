"""Recording every test in the results store when it ends: a listener of the run's
events (engine.events), so the engine knows nothing of the store.

Each final record (``record``), superseded attempt (``attempt``: kind ``attempt``) and
compliance test (``compliance``: kind ``compliance``, the compliance run's own record
with the verdict) gets its run folder (results.runs: its logs kept whatever later runs
do) and a row in the store (results.store), whose ``log_dir`` is the run folder. A
test that crashed or was interrupted arrives as a FAILED record with its reason and is
stored like any other.

A store that is already there is opened when the run starts, so one that cannot be used
(a corrupt file, a newer schema) refuses the run before anything ran; a new store is
made when the first test ends (a run refused before any test leaves no file). A test that cannot be
recorded later (a full disk, a store locked for too long) loses nothing: its results
are on disk already; the failure becomes a run note naming them and how to adopt them
(``mlperf-pilot results import``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.engine.events import RunObserver
from mlperf_pilot.errors import StoreError

if TYPE_CHECKING:
    from mlperf_pilot.compliance.run import ComplianceRecord
    from mlperf_pilot.engine.events import RunSummary
    from mlperf_pilot.engine.plan import RunPlan
    from mlperf_pilot.results.records import RunRecord
    from mlperf_pilot.results.store import ResultsStore


class StoreRecorder(RunObserver):
    """Records the run's tests (``kind``: ``run``, or ``bench`` ...) in the store at
    ``store`` (None: $MLPERF_PILOT_STORE, else ``<results_dir>/results.sqlite``).
    ``note`` reports a test that could not be recorded; the ids recorded go to
    ``summary.test_ids``."""

    def __init__(self, summary: RunSummary, *, store: Path | None, kind: str = "run",
                 note: Callable[[str], None]) -> None:
        self.summary = summary
        self.store_file = store
        self.kind = kind
        self._note = note
        self._store: ResultsStore | None = None
        self._attempts: dict[tuple[str, str], int] = {}
        self._latest: dict[str, RunRecord] = {}  # scenario -> its last record

    def run_started(self, plan: RunPlan, results_dir: Path) -> None:
        from mlperf_pilot.results.store import open_store, store_path

        self.results_dir = results_dir
        path = store_path(self.store_file, results_dir=results_dir)
        self.summary.store = path
        # a store already there is opened (and refuses the run if it cannot be used);
        # a new one is made with the first test, so a run refused before any test
        # leaves no file behind
        if path.exists():
            self._store = open_store(path)

    def record(self, record: RunRecord) -> None:
        self._latest[record.scenario.value] = record
        self._keep(record, self.kind)

    def attempt(self, record: RunRecord) -> None:
        key = (record.scenario.value, record.mode.value)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        # a rerun's logs were moved to .attempts/; a find probe's folder was reused by the
        # next probe, so its logs are gone (only its record is kept)
        self._keep(record, "attempt", label=f"attempt{self._attempts[key]}",
                   own_logs=Path(record.log_dir).parent.name == ".attempts")

    def compliance(self, record: ComplianceRecord) -> None:
        try:
            run = self._compliance_run(record)
        except (StoreError, OSError) as exc:
            self._failed(f"{record.scenario} {record.test}", exc, record.run_dir)
            return
        if run is None:
            return
        folder = Path(record.test_dir)
        extra = tuple(sorted(folder.glob("verify_*.txt"))) if folder.is_dir() else ()
        self._keep(run, "compliance", label=record.test, extra=extra,
                   verdict=record.model_dump(mode="json"))

    # ------------------------------------------------------------------ internals
    def _compliance_run(self, check: ComplianceRecord) -> RunRecord | None:
        """The compliance test as a RunRecord: its LoadGen run's record with the
        verdict (PASS/INDICATIVE: VALID, FAIL: INVALID, a run that failed: FAILED)."""
        from mlperf_pilot.results.records import read_record
        from mlperf_pilot.vocab import ComplianceStatus, RunStatus

        run_file = Path(check.run_dir) / "run.json"
        if run_file.is_file():
            base = read_record(run_file)
        elif check.scenario.value in self._latest:  # the test could not be prepared
            base = self._latest[check.scenario.value].model_copy(
                update={"status": RunStatus.FAILED, "loadgen": None, "metric_value": None})
        else:
            return None
        status = base.status
        if status is not RunStatus.FAILED:
            status = RunStatus.INVALID if check.status is ComplianceStatus.FAIL \
                else RunStatus.VALID
        reasons = [f"{check.test} {check.status.value}: {reason}" for reason in check.reasons]
        return base.model_copy(update={
            "run_id": check.run_id, "status": status,
            "reasons": list(dict.fromkeys([*base.reasons, *reasons])),
            "log_dir": check.run_dir or base.log_dir})

    def _keep(self, record: RunRecord, kind: str, *, label: str | None = None,
              extra: tuple[Path, ...] = (), verdict: dict[str, Any] | None = None,
              own_logs: bool = True) -> None:
        from mlperf_pilot.results.runs import keep_run_folder
        from mlperf_pilot.results.store import this_host

        what = f"{record.scenario} {record.mode}" + (f" {label}" if label else "")
        try:
            if self._store is None:
                from mlperf_pilot.results.store import open_store

                self._store = open_store(self.summary.store)
            test_id = self._store.free_id(record, label)
            kept = keep_run_folder(self.results_dir, test_id, record, extra=extra,
                                   own_logs=own_logs)
            provenance: dict[str, Any] = {"host": this_host()}
            if verdict is not None:
                (Path(kept.log_dir) / "compliance.json").write_text(
                    json.dumps(verdict, indent=2) + "\n", encoding="utf-8")
                provenance["compliance"] = verdict
            self._store.add(kept, kind=kind, test_id=test_id, provenance=provenance)
        except (StoreError, OSError) as exc:
            self._failed(what, exc, record.log_dir)
            return
        self.summary.test_ids.append(test_id)

    def _failed(self, what: str, exc: BaseException, logs: str) -> None:
        cause = exc.message if isinstance(exc, StoreError) else (
            getattr(exc, "strerror", None) or str(exc))
        self._note(f"{what} not recorded in the results store: {cause}; its results are "
                   f"kept in {logs} (adopt them later: mlperf-pilot results import "
                   f"{self.results_dir})")


__all__ = ["StoreRecorder"]

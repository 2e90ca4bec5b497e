"""A sweep's state: its id, its points, their jobs and what each point did.

It lives in ``RESULTS/sweeps/SWEEP_ID/sweep.json``, beside the points' folders
``RESULTS/sweeps/SWEEP_ID/pNNN/attempt-N/`` (``point.yaml``, the run's ``run.json``,
``run.log``, ``outcome.json``, its ``results/`` folder and its own results store
``store.sqlite``). Only the ``sweep`` commands write ``sweep.json`` and the sweep's store;
the jobs write only their attempt folders, so no file is written by two processes (or two
hosts) at once.

A point's status comes from three witnesses, in this order: its attempt's
``outcome.json`` (the run ended: exit 0 = ``done``; exit 1 with a summary = ``invalid``,
a run that finished but whose tests were not all VALID; anything else ``failed``), the
scheduler (``queued``/``running``; a job that ended without an outcome is ``failed``
with the scheduler's reason: cancelled, time limit, node lost, its exit code), and the
results store: when an attempt ended, the tests it recorded in its own store are merged
into the sweep's (:func:`merge_job_store`; their ids are the point's ``test_ids``). A
failed attempt is recorded once in the sweep's store as a FAILED test of kind ``sweep``
carrying the reason and the log path.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlperf_pilot.errors import ConfigError, MlperfPilotError
from mlperf_pilot.sweep.executors.base import Executor, JobInfo
from mlperf_pilot.sweep.grid import ExecutorSettings
from mlperf_pilot.sweep.job import LOG_FILE, PID_FILE, read_outcome, read_summary

STATE_FILE = "sweep.json"
JOB_STORE = "store.sqlite"  # each attempt's own results store, merged into the sweep's
SWEEPS_DIR = "sweeps"
PENDING, QUEUED, RUNNING = "pending", "queued", "running"
DONE, INVALID, FAILED = "done", "invalid", "failed"
FINISHED = frozenset({DONE, INVALID})  # never run again
IN_FLIGHT = frozenset({QUEUED, RUNNING})


class PointState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    label: str
    values: dict[str, Any] = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)  # the `mlperf-pilot run` it equals
    status: str = PENDING
    attempts: int = 0
    job_id: str | None = None
    log: str | None = None  # the scheduler's log of the last job (else the run's log)
    reason: str | None = None  # why the last attempt failed
    test_ids: list[str] = Field(default_factory=list)  # in the results store
    failure_recorded: str | None = None  # the store's id of the FAILED sweep record

    def attempt_dir(self, sweep_dir: Path, attempt: int | None = None) -> Path:
        return sweep_dir / self.id / f"attempt-{attempt or self.attempts}"


class SweepState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: str
    name: str
    created: str
    sweep_file: str
    executor: ExecutorSettings
    results_dir: str
    store: str
    cache_dir: str
    points: list[PointState]

    @property
    def folder(self) -> Path:
        return sweep_folder(Path(self.results_dir), self.sweep_id)

    def save(self) -> None:
        from mlperf_pilot.storage import write_text_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / STATE_FILE, self.model_dump_json(indent=2) + "\n")

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for point in self.points:
            counts[point.status] = counts.get(point.status, 0) + 1
        return counts

    @property
    def settled(self) -> bool:
        """No point queued or running."""
        return not any(p.status in IN_FLIGHT for p in self.points)


def new_sweep_id(name: str) -> str:
    """``NAME-YYYYmmddTHHMMSSmmmZ`` (UTC, to the millisecond)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return f"{name}-{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"


def sweep_folder(results_dir: Path, sweep_id: str) -> Path:
    return results_dir / SWEEPS_DIR / sweep_id


def load_state(sweep_id: str, results_dir: Path) -> SweepState:
    """The sweep ``sweep_id`` (or a unique prefix of it) under ``results_dir``; a path to
    a sweep folder or its sweep.json works as well."""
    given = Path(sweep_id)
    candidates = [given / STATE_FILE, given] if given.exists() else []
    root = results_dir / SWEEPS_DIR
    if not candidates:
        exact = root / sweep_id / STATE_FILE
        found = [exact] if exact.exists() else sorted(root.glob(f"{sweep_id}*/{STATE_FILE}"))
        if len(found) > 1:
            raise ConfigError(f"sweep id {sweep_id} is ambiguous under {root}",
                              hint="give more of it: " + ", ".join(p.parent.name
                                                                   for p in found[:5]))
        candidates = found
    for path in candidates:
        if path.is_file():
            try:
                return SweepState.model_validate_json(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ConfigError(f"{path} is not a sweep's state: {exc}".splitlines()[0],
                                  hint="give the id `sweep run` printed") from None
    known = sorted(p.parent.name for p in root.glob(f"*/{STATE_FILE}"))
    raise ConfigError(f"no sweep {sweep_id} under {root}",
                      hint=(f"known sweeps: {', '.join(known[-5:])}" if known else
                            "start one with `mlperf-pilot sweep run SWEEP.yaml`")
                      + "; or give --results-dir")


def refresh(state: SweepState, executor: Executor, *, final: bool = False) -> SweepState:
    """Bring every queued or running point up to date (files, scheduler, store) and
    record newly failed attempts in the store; saves the state. ``final``: the
    executor's jobs all ended (a blocking executor returned), so a point without an
    outcome failed."""
    active = [p for p in state.points if p.status in IN_FLIGHT and p.job_id]
    jobs = executor.poll([p.job_id for p in active if p.job_id]) if active else {}
    store = _open_store(state)
    for point in active:
        _update(point, state.folder, jobs.get(point.job_id or ""), executor, final)
        if store is not None and point.status not in IN_FLIGHT:
            point.test_ids = merge_job_store(store, point.attempt_dir(state.folder))
            if point.status == FAILED and point.failure_recorded is None:
                point.failure_recorded = _record_failure(store, state, point)
    state.save()
    return state


def _update(point: PointState, sweep_dir: Path, job: JobInfo | None,
            executor: Executor, final: bool) -> None:
    folder = point.attempt_dir(sweep_dir)
    outcome = read_outcome(folder)
    if outcome is not None:
        code = int(outcome.get("exit_code", -1))
        summary = read_summary(folder) or {}
        if code == 0:
            point.status, point.reason = DONE, None
        elif code == 1 and summary.get("records") and "error" not in summary:
            point.status, point.reason = INVALID, _invalid_reason(summary)
        elif job is not None and (job.waiting or job.active) and not final:
            point.status = RUNNING  # failed: wait for the scheduler's word on why
        else:
            point.status = FAILED
            point.reason = _run_failure(code, summary, folder)
            if job is not None and not (job.waiting or job.active) and \
                    job.state != "COMPLETED":
                point.reason += f"; {executor.name}: {job.describe()}"
        return
    if job is not None and job.waiting:
        point.status = QUEUED
    elif job is not None and job.active:
        point.status = RUNNING
    elif job is not None:
        point.status = FAILED
        point.reason = f"{executor.name}: {job.describe()}; the run left no outcome " \
                       f"(its log: {folder / LOG_FILE})"
    elif final or not executor.blocking or not executor.runner_alive():
        point.status = FAILED
        whose = "the sweep's runner ended" if executor.blocking else \
            f"{executor.name} no longer knows job {point.job_id}"
        point.reason = (f"{whose} and the run left no outcome (its log: {folder / LOG_FILE})"
                        if (folder / PID_FILE).exists() else
                        f"{whose} and the run never started (stopped or cancelled first)")


def _run_failure(code: int, summary: dict[str, Any], folder: Path) -> str:
    error = summary.get("error") if isinstance(summary.get("error"), dict) else None
    if summary.get("interrupted"):
        why = f"interrupted by {summary['interrupted']}"
    elif error and error.get("message"):
        why = str(error["message"])
    else:
        why = _last_error_line(folder / LOG_FILE) or "no error message"
    return f"exit {code}: {why} (log: {folder / LOG_FILE})"


def _invalid_reason(summary: dict[str, Any]) -> str:
    reasons = [f"{r.get('scenario')} {r.get('mode')} {r.get('status')}"
               for r in summary.get("records", []) if r.get("status") != "VALID"]
    return "not all tests VALID: " + ", ".join(reasons) if reasons else "not all tests VALID"


def _last_error_line(log: Path) -> str | None:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or [line for line in lines if line.strip()] or [None])[-1]


def _open_store(state: SweepState) -> Any:
    try:
        from mlperf_pilot.results.store import open_store

        return open_store(Path(state.store))
    except (ImportError, MlperfPilotError):
        return None  # the sweep's state still says what happened


def merge_job_store(store: Any, attempt_dir: Path) -> list[str]:
    """Copy the tests an attempt recorded in its own store (``JOB_STORE``) into the
    sweep's store, keeping their ids (those there already are skipped: merging twice
    adds nothing); returns the attempt's test ids."""
    from mlperf_pilot.results.store import open_store

    path = attempt_dir / JOB_STORE
    if not path.is_file():
        return []
    try:
        with open_store(path) as job:
            tests = job.select()
        present = {row["test_id"] for row in store.rows()}
        for test in tests:
            if test.test_id not in present:
                store.add(test.record, kind=test.kind, test_id=test.test_id,
                          settings=test.settings, provenance=test.provenance)
    except MlperfPilotError:
        return []
    return [t.test_id for t in tests]


def _record_failure(store: Any, state: SweepState, point: PointState) -> str | None:
    """A FAILED test of kind ``sweep`` for the point's failed attempt (its reason and log
    path), so the store lists it beside the runs; None when it cannot be made."""
    from mlperf_pilot.config import load_config_file
    from mlperf_pilot.engine import plan_run, resolve_spec
    from mlperf_pilot.results.records import RunRecord
    from mlperf_pilot.sweep.job import POINT_FILE
    from mlperf_pilot.vocab import Mode, RunStatus

    folder = point.attempt_dir(state.folder)
    try:
        spec = resolve_spec([load_config_file(folder / POINT_FILE)])
        plan = plan_run(spec, layer=False)
        device = str(getattr(spec.sut, "device", None) or "cpu")
        record = RunRecord(
            model=plan.card.name, mlperf_model=plan.card.mlperf_model,
            backend=str(plan.sut.details.get("backend", plan.sut.kind)),
            backend_version=None, device=device, device_in_use=device, system=plan.system,
            scenario=spec.scenarios[0], mode=(spec.modes or (Mode.PERFORMANCE,))[0],
            status=RunStatus.FAILED,
            reasons=[f"sweep {state.sweep_id} point {point.id} ({point.label}) attempt "
                     f"{point.attempts}: {point.reason}",
                     f"log: {point.log or folder / LOG_FILE}"],
            log_dir=str(folder), execution_mode=spec.execution_mode, sut_kind=plan.sut.kind)
        return store.add(record, kind="sweep", label=f"{point.id}-attempt{point.attempts}",
                         settings=spec.model_dump(mode="json"),
                         provenance={"sweep_id": state.sweep_id, "point": point.id})
    except (MlperfPilotError, OSError, ValueError):
        return None


__all__ = ["DONE", "FAILED", "FINISHED", "INVALID", "IN_FLIGHT", "JOB_STORE", "PENDING",
           "QUEUED", "RUNNING", "STATE_FILE", "PointState", "SweepState", "load_state",
           "merge_job_store", "new_sweep_id", "refresh", "sweep_folder"]

"""RunRecord: what one LoadGen run concluded, saved as JSON next to its logs.

A record is typed all the way down, so a results store can take it as it is: the
statuses and the scenario/mode are the enums of :mod:`mlperf_pilot.vocab`, ``loadgen``
is the parsed :class:`~mlperf_pilot.loadgen.logs.LoadGenResult`, the times are
timezone-aware UTC datetimes (ISO 8601 in the file). Records written by earlier
versions (plain-word statuses, ``loadgen`` as a dict, ``started`` as an ISO string, no
``run_id``) read into the same types.

``run_id`` names one ``mlperf-pilot run`` (every record and compliance record of that
run carry the same id; the engine gives it to each job). It is time-based so ids sort
by when their run started, and readable: ``20250605T101500Z-3f9a1c2b4d5e`` (UTC start
time to the second, then 48 random bits, so two runs started in the same second on
different machines still differ). A record made without one gets a fresh id.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from mlperf_pilot.errors import StoreError
from mlperf_pilot.loadgen.logs import LoadGenResult
from mlperf_pilot.results.provenance import as_utc, new_run_id, utc_now, why_unreadable
from mlperf_pilot.storage import write_text_atomic
from mlperf_pilot.vocab import ExecutionMode, Mode, RunStatus, Scenario

# aliases kept for code not yet moved to RunStatus (compare with the members instead)
STATUS_VALID = RunStatus.VALID
STATUS_INVALID = RunStatus.INVALID
STATUS_FAILED = RunStatus.FAILED  # the run did not complete (exception, crash, interrupt)
# An interrupted test is FAILED with ``interrupted`` set to the signal's name (SIGINT,
# SIGTERM) and a reason saying so: whatever refuses FAILED runs refuses it too.

__all__ = ["STATUS_FAILED", "STATUS_INVALID", "STATUS_VALID", "AccuracyRecord", "RunRecord",
           "as_utc", "new_run_id", "read_record", "utc_now", "write_record"]


class AccuracyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str
    value: float
    text: str
    total: int
    empty: int = 0
    target: float | None = None  # the card's closed-division target (reference x ratio), %
    meets_target: bool | None = None  # value >= target (None: no target known)


class RunRecord(BaseModel):
    # validate_assignment: ``record.status = "VALID"`` or ``record.loadgen = {...}``
    # (a LoadGenResult dumped to a dict) still leaves the typed value in the record
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run_id: str = Field(default_factory=new_run_id)
    model: str
    mlperf_model: str
    backend: str
    backend_version: str | None
    device: str
    device_in_use: str
    system: str
    scenario: Scenario
    mode: Mode
    status: RunStatus = RunStatus.FAILED
    reasons: list[str] = Field(default_factory=list)
    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None
    accuracy: AccuracyRecord | None = None
    samples_failed: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    log_dir: str
    started: _dt.datetime = Field(default_factory=utc_now)
    finished: _dt.datetime | None = None
    duration_s: float | None = None
    peak_rss_mb: float | None = None  # of the process that ran the LoadGen test
    loadgen: LoadGenResult | None = None  # LoadGen's own verdict and numbers, parsed
    reference_line: str | None = None
    interrupted: str | None = None  # the signal that stopped the test (status FAILED)
    # what a submission would make of it (results.submittable): the run's execution mode,
    # whether the result is submittable and, when not, why, in words with units
    execution_mode: ExecutionMode | None = None  # None: a record of an earlier version
    submittable: bool = False
    not_submittable: list[str] = Field(default_factory=list)
    model_verified: bool | None = None  # the model file checked against a pinned checksum
    # what ran the samples (SutDescription): its kind and details: the batcher's settings;
    # for a server (--sut oip) the endpoint, model name, platform, protocol (no token)
    sut_kind: str | None = None
    sut_details: dict[str, str | int | float] = Field(default_factory=dict)

    @field_validator("started", "finished")
    @classmethod
    def _utc(cls, value: _dt.datetime | None) -> _dt.datetime | None:
        return as_utc(value) if value is not None else None

    @field_serializer("started", "finished", when_used="json")
    def _iso(self, value: _dt.datetime | None) -> str | None:
        # "+00:00", not pydantic's "Z": what earlier records hold, and what
        # datetime.fromisoformat reads before Python 3.11
        return value.isoformat() if value is not None else None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.VALID


def write_record(record: RunRecord, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, record.model_dump_json(indent=2) + "\n")


def read_record(path: Path) -> RunRecord:
    """A record as written by this version or an earlier one; StoreError otherwise."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return RunRecord.model_validate(data)
    except (OSError, ValueError) as exc:
        raise StoreError(f"run record {path} cannot be read: {why_unreadable(exc)}",
                         hint="rerun the test to write it again (LoadGen's logs beside it "
                              "are kept as they were)") from exc

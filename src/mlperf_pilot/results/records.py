"""RunRecord: what one LoadGen run concluded, saved as JSON next to its logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlperf_pilot.errors import StoreError
from mlperf_pilot.storage import write_text_atomic

STATUS_VALID = "VALID"
STATUS_INVALID = "INVALID"
STATUS_FAILED = "FAILED"  # the run did not complete (exception, crash, interrupt)
# An interrupted test is FAILED with ``interrupted`` set to the signal's name (SIGINT,
# SIGTERM) and a reason saying so: whatever refuses FAILED runs refuses it too.


class AccuracyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str
    value: float
    text: str
    total: int
    empty: int = 0


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    mlperf_model: str
    backend: str
    backend_version: str | None
    device: str
    device_in_use: str
    system: str
    scenario: str
    mode: str
    status: str = STATUS_FAILED
    reasons: list[str] = Field(default_factory=list)
    metric_name: str | None = None
    metric_value: float | None = None
    metric_unit: str | None = None
    accuracy: AccuracyRecord | None = None
    samples_failed: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    log_dir: str
    started: str
    finished: str | None = None
    duration_s: float | None = None
    peak_rss_mb: float | None = None  # of the process that ran the LoadGen test
    loadgen: dict[str, Any] | None = None  # the parsed LoadGenResult
    reference_line: str | None = None
    interrupted: str | None = None  # the signal that stopped the test (status FAILED)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_VALID


def write_record(record: RunRecord, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, record.model_dump_json(indent=2) + "\n")


def read_record(path: Path) -> RunRecord:
    try:
        return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise StoreError(f"run record {path} cannot be read: {exc}") from exc

"""The executor protocol: submit a sweep's point attempts as jobs, say what the scheduler
knows of them, cancel them.

An executor never decides whether a point is done: the point's own files
(:mod:`mlperf_pilot.sweep.job`) and the results store do; the scheduler's word
(:class:`JobInfo`) says whether a job is still queued or running and, for one that ended
without a result, why (cancelled, time limit, node lost, exit code).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mlperf_pilot.sweep.grid import ExecutorSettings

# the scheduler's states, in Slurm's words (other executors map theirs onto them)
WAITING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESV_DEL_HOLD", "SUSPENDED"})
ACTIVE = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"})


@dataclass(frozen=True)
class JobInfo:
    """What the scheduler says about one job."""

    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
    reason: str | None = None
    exit_code: str | None = None  # Slurm's "code:signal"

    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def describe(self) -> str:
        parts = [self.state]
        if self.reason and self.reason not in {"None", "(null)"}:
            parts.append(f"reason {self.reason}")
        if self.exit_code and self.exit_code != "0:0":
            parts.append(f"exit code {self.exit_code}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Submission:
    """One job submitted for a point attempt."""

    point_id: str
    job_id: str
    log: str | None  # the scheduler's log of the job (None: the run's own log only)


class Executor(ABC):
    """Runs point attempts (each an attempt folder with its ``point.yaml``) as jobs."""

    name: ClassVar[str]
    # True: submit() returns once the jobs ended (local); False: once they are queued
    blocking: ClassVar[bool] = False

    def __init__(self, settings: ExecutorSettings, sweep_dir: Path, sweep_id: str) -> None:
        self.settings = settings
        self.sweep_dir = sweep_dir
        self.sweep_id = sweep_id

    def planned_job_id(self, attempt_dir: Path) -> str | None:
        """The id a job will have, known before it is submitted (None: the scheduler
        gives it); lets another process follow a blocking executor's jobs."""
        return None

    def runner_alive(self) -> bool:
        """A blocking executor: whether the process running the jobs is still there (a
        queued point of a runner that ended will never run)."""
        return True

    def resuming(self) -> None:
        """Called before ``sweep resume`` submits again (e.g. to forget a cancel)."""
        return None

    @abstractmethod
    def submit(self, attempts: Sequence[tuple[str, Path]]) -> list[Submission]:
        """Submit one job per ``(point id, attempt folder)``."""

    @abstractmethod
    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """What the scheduler knows of these jobs; a job it no longer knows is left out."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> list[str]:
        """Cancel these jobs; returns those a cancel was sent to."""


__all__ = ["ACTIVE", "WAITING", "Executor", "JobInfo", "Submission"]

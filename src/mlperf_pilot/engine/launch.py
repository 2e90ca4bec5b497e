"""Launchers: how one LoadGen test job runs (``launch(job, progress, total) -> RunRecord``).

:class:`SubprocessLauncher` (the default) runs each test in a fresh process, as LoadGen
needs for a clean mlperf.conf load (see docs/ARCHITECTURE.md). :class:`InlineLauncher`
runs it in this process (tests, embedding programs; LoadGen then logs "Multiple conf
files" from the second test on, so its results are not for submission).

``SubprocessLauncher`` writes the job next to where the record goes, starts
``python -m mlperf_pilot.engine.child JOB.json``, follows its ``total N`` (the samples
LoadGen plans) and ``progress N`` lines and
reads back the RunRecord it writes. SIGINT/SIGTERM meanwhile are forwarded to the child and
waited for (:class:`mlperf_pilot.interrupts.ForwardToChild`); the record of the test
in flight then travels on an :class:`~mlperf_pilot.interrupts.Interrupted`. A child
that ends without a record (a crash, a signal: named, e.g. "killed by SIGKILL") gets
one written here, naming its stderr file, which is then kept.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Protocol

from mlperf_pilot.engine.job import TestJob
from mlperf_pilot.interrupts import ForwardToChild, Interrupted, signal_name
from mlperf_pilot.progress import Progress, ProgressTask
from mlperf_pilot.results.provenance import utc_now
from mlperf_pilot.results.records import RunRecord, read_record, write_record
from mlperf_pilot.storage import write_text_atomic
from mlperf_pilot.vocab import Mode, RunStatus


class Launcher(Protocol):
    """Runs one LoadGen test job and returns its record (also written to disk)."""

    def launch(self, job: TestJob, progress: Progress, total_samples: int) -> RunRecord: ...


class SubprocessLauncher:
    """Each test in a fresh ``python -m mlperf_pilot.engine.child`` process."""

    def launch(self, job: TestJob, progress: Progress, total_samples: int) -> RunRecord:
        return run_in_child(job, progress, total_samples)


class InlineLauncher:
    """Each test in this process (LoadGen in a thread, as in the child)."""

    def launch(self, job: TestJob, progress: Progress, total_samples: int) -> RunRecord:
        from mlperf_pilot.engine.child import run_test

        job.record_file.unlink(missing_ok=True)
        total = total_samples if job.mode is Mode.ACCURACY else None
        with progress.task(job.title, total=total, unit="samples"):
            return run_test(job, progress_lines=False)


def run_in_child(job: TestJob, progress: Progress, total_samples: int) -> RunRecord:
    """Run one LoadGen test in a fresh Python process and return its record."""
    record_path = job.record_file
    record_path.unlink(missing_ok=True)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    stem = record_path.stem
    job_path = record_path.with_name(f"{stem}.job.json")
    write_text_atomic(job_path, job.model_dump_json(indent=2))
    stderr_path = record_path.with_name(f"{stem}.stderr.txt")
    total = total_samples if job.mode is Mode.ACCURACY else None
    label = job.title
    with stderr_path.open("w", encoding="utf-8") as err, \
            progress.task(label, total=total, unit="samples") as task:
        child = subprocess.Popen(
            [sys.executable, "-m", "mlperf_pilot.engine.child", str(job_path)],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
        # SIGINT/SIGTERM go on to the child, which writes its record; it is waited for
        with ForwardToChild(child) as forward:
            try:
                assert child.stdout is not None
                for line in child.stdout:
                    total = _follow(line, task, total)
                child.wait()
            except BaseException:
                child.kill()
                child.wait()
                raise
        if record_path.is_file():
            record = read_record(record_path)
            job_path.unlink(missing_ok=True)
            if stderr_path.stat().st_size == 0:
                stderr_path.unlink()
        else:  # the job file and the stderr file stay: the reason names the latter
            record = _crashed_record(job, child.returncode, stderr_path, forward)
        if forward.received is not None:
            raise Interrupted(forward.received, record)
    return record


def _follow(line: str, task: ProgressTask, total: float | None) -> float | None:
    """One line of the child's protocol: ``total N`` (the samples LoadGen plans) or
    ``progress N`` (answered so far; a SingleStream/MultiStream SUT faster than its
    expected latency answers more than planned, and the total follows)."""
    word, _, value = line.partition(" ")
    if word not in ("total", "progress") or not value.strip().isdigit():
        return total
    count = int(value)
    if word == "total":
        task.update(total=count)
        return count
    if total is not None and count > total:
        total = count
        task.update(total=total)
    task.update(completed=count)
    return total


def _crashed_record(job: TestJob, returncode: int, stderr_path: Path,
                    forward: ForwardToChild | None = None) -> RunRecord:
    """The record of a test process that ended without writing one: how it ended (a
    signal by name), the last line of its stderr and that file (kept)."""
    tail = ""
    if stderr_path.is_file():
        lines = stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = lines[-1] if lines else ""
    how = (f"was killed by {signal_name(-returncode)}" if returncode < 0
           else f"exited with code {returncode}")
    received = forward.received if forward is not None else None
    if forward is not None and forward.killed:
        how = f"did not stop within {forward.grace_s:g} s and was killed"
    reason = f"the test process {how}" + (f": {tail}" if tail else "") + \
        f" (see {stderr_path})"
    if received is not None:
        reason = (f"interrupted by {signal_name(received)}: {reason}; the partial LoadGen "
                  f"logs are kept in {job.logs}")
    record = RunRecord(
        run_id=job.run_id, model=job.model.name, mlperf_model=job.model.mlperf_model,
        backend=job.sut_name, backend_version=None, device=job.device_name,
        device_in_use="unknown", system=job.system, scenario=job.scenario, mode=job.mode,
        log_dir=str(job.logs), started=utc_now(),
        status=RunStatus.FAILED, reasons=[reason],
        interrupted=signal_name(received) if received is not None else None,
    )
    if job.facts is not None:
        from mlperf_pilot.results.submittable import apply

        apply(record, job.facts)
    write_record(record, job.record_file)
    return record


__all__ = ["InlineLauncher", "Launcher", "SubprocessLauncher", "run_in_child"]

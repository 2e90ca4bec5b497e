"""The local executor: the points on this machine, ``max_parallel`` at a time (default
one: measurements on a shared machine disturb each other), each in its own process.

``submit`` returns when every job ended. A job's id is ``local:<attempt folder>``; while
it runs, ``poll`` finds the run's PID in that folder, and ``cancel`` (from another
``mlperf-pilot sweep cancel``) sends it SIGTERM, which the run answers as Ctrl-C: the test
in flight is stopped and recorded FAILED, the run exits 143; the points not started yet
are skipped (``SWEEP/cancelled``; ``sweep resume`` removes it and runs them).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlperf_pilot.sweep.executors.base import Executor, JobInfo, Submission
from mlperf_pilot.sweep.job import LOG_FILE, run_point, running_pid

PREFIX = "local:"
CANCELLED_FILE = "cancelled"
RUNNER_FILE = "runner.pid"  # the `sweep run`/`resume` process while it runs points


class LocalExecutor(Executor):
    name = "local"
    blocking = True
    prefix = PREFIX  # job ids: PREFIX + the attempt folder

    def planned_job_id(self, attempt_dir: Path) -> str | None:
        return f"{self.prefix}{attempt_dir}"

    def resuming(self) -> None:
        (self.sweep_dir / CANCELLED_FILE).unlink(missing_ok=True)

    def submit(self, attempts: Sequence[tuple[str, Path]]) -> list[Submission]:
        def one(folder: Path) -> None:
            if not (self.sweep_dir / CANCELLED_FILE).exists():  # `sweep cancel` ran
                run_point(folder)

        runner = self.sweep_dir / RUNNER_FILE
        runner.write_text(f"{os.getpid()}\n")
        try:
            with ThreadPoolExecutor(max_workers=self.settings.max_parallel,
                                    thread_name_prefix="sweep-point") as pool:
                try:
                    list(pool.map(lambda item: one(item[1]), attempts))
                except BaseException:  # Ctrl-C, SIGTERM: start no further point
                    (self.sweep_dir / CANCELLED_FILE).write_text("the sweep was stopped\n")
                    raise
        finally:
            runner.unlink(missing_ok=True)
        return [Submission(point_id, f"{self.prefix}{folder}", str(folder / LOG_FILE))
                for point_id, folder in attempts]

    def runner_alive(self) -> bool:
        try:
            os.kill(int((self.sweep_dir / RUNNER_FILE).read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        found = {}
        for job_id in job_ids:
            folder = job_id[len(self.prefix):]
            if job_id.startswith(self.prefix) and running_pid(Path(folder)):
                found[job_id] = JobInfo("RUNNING")
        return found

    def cancel(self, job_ids: Sequence[str]) -> list[str]:
        # the points not started yet are not started (the runner checks this file)
        (self.sweep_dir / CANCELLED_FILE).write_text("cancelled by `sweep cancel`\n")
        sent = []
        for job_id in job_ids:
            pid = running_pid(Path(job_id[len(self.prefix):])) \
                if job_id.startswith(self.prefix) else None
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    continue
                sent.append(job_id)
        return sent


__all__ = ["LocalExecutor"]

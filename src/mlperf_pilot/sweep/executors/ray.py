"""The Ray executor: one Ray task per point, on a Ray instance this process starts.

``submit`` starts Ray bound to 127.0.0.1 (``ray.init(_node_ip_address="127.0.0.1")``:
without it Ray probes 8.8.8.8:53 for the node's address), no dashboard, ``max_parallel``
CPUs, and runs each attempt as a task of one CPU (so at most ``max_parallel`` at once)
with ``max_calls=1``: Ray reuses worker processes, and LoadGen runs one test per
process, so each worker runs one task and exits. The task is
:func:`~mlperf_pilot.sweep.job.run_point`, which runs the point's ``mlperf-pilot run`` as
a child process, as the local executor does. ``submit`` returns when every task ended
(the Ray instance lives as long as this process), then shuts Ray down. A task Ray could
not run to its end (its worker died, Ray's own error) is FAILED with Ray's reason;
cancelling, the ``cancelled`` mark and job ids (``ray:<attempt folder>``) are the local
executor's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mlperf_pilot.errors import MissingDependencyError
from mlperf_pilot.sweep.executors.base import JobInfo, Submission
from mlperf_pilot.sweep.executors.local import CANCELLED_FILE, RUNNER_FILE, LocalExecutor
from mlperf_pilot.sweep.job import LOG_FILE, run_point


def _point_task(sweep_dir: str, folder: str) -> int | None:
    if (Path(sweep_dir) / CANCELLED_FILE).exists():  # `sweep cancel` ran: not started
        return None
    return run_point(folder)


class RayExecutor(LocalExecutor):
    name = "ray"
    blocking = True
    prefix = "ray:"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._failed: dict[str, str] = {}  # job id -> Ray's reason

    def submit(self, attempts: Sequence[tuple[str, Path]]) -> list[Submission]:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray", "sweep run --executor ray") from None
        runner = self.sweep_dir / RUNNER_FILE
        runner.write_text(f"{os.getpid()}\n")
        ray.init(num_cpus=self.settings.max_parallel, include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False)
        try:
            task = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(_point_task)
            refs = {f"{self.prefix}{folder}": task.remote(str(self.sweep_dir), str(folder))
                    for _, folder in attempts}
            try:
                for job_id, ref in refs.items():
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        self._failed[job_id] = _first_line(exc)
            except BaseException:  # Ctrl-C, SIGTERM: start no further point
                (self.sweep_dir / CANCELLED_FILE).write_text("the sweep was stopped\n")
                raise
        finally:
            ray.shutdown()
            runner.unlink(missing_ok=True)
        return [Submission(point_id, f"{self.prefix}{folder}", str(folder / LOG_FILE))
                for point_id, folder in attempts]

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        found = super().poll(job_ids)
        for job_id in job_ids:
            if job_id in self._failed:
                found[job_id] = JobInfo("FAILED", self._failed[job_id])
        return found


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


__all__ = ["RayExecutor"]

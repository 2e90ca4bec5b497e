"""The Slurm executor: the points as one job array, submitted through submitit.

``submit`` hands :func:`~mlperf_pilot.sweep.job.run_point` and the attempt folders to
``submitit.SlurmExecutor.map_array`` (one ``sbatch --array``, at most ``max_parallel``
tasks at once), each task one node (``--nodes 1``, ``--exclusive`` when asked: what
submitters need), with the time limit, partition and GPUs given; submitit writes each
task's stdout/stderr under ``SWEEP/slurm/<job id>/``. Without slurmdbd there is no
``sacct`` and submitit reports UNKNOWN, so the states come from ``squeue -t all`` (what
slurmctld still knows: pending, running and, for MinJobAge seconds, ended jobs with
their reason) and ``scontrol show job`` (the exit code). ``cancel`` is ``scancel``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from mlperf_pilot.errors import MissingDependencyError, MlperfPilotError
from mlperf_pilot.sweep.executors.base import Executor, JobInfo, Submission
from mlperf_pilot.sweep.job import run_point

DEFAULT_TIME_LIMIT_MIN = 60  # submitit's own default is 5 minutes: too short for a run
# submitit signals USR2 this long before the time limit (to requeue); a run has nothing
# to checkpoint, so it is kept short: the job then ends as Slurm's TIMEOUT
SIGNAL_DELAY_S = 5
_HINT = "check that the Slurm clients (sbatch, squeue) are on PATH and reach slurmctld"


class SlurmExecutor(Executor):
    name = "slurm"

    def submit(self, attempts: Sequence[tuple[str, Path]]) -> list[Submission]:
        try:
            import submitit
        except ImportError:
            raise MissingDependencyError("submitit", "slurm",
                                         "sweep run --executor slurm") from None
        settings = self.settings
        logs = self.sweep_dir / "slurm" / "%j"
        executor = submitit.SlurmExecutor(folder=logs, max_num_timeout=0)
        params: dict[str, object] = {
            "job_name": f"mlperf-pilot-{self.sweep_id}"[:64],
            "time": settings.minutes() or DEFAULT_TIME_LIMIT_MIN,
            "nodes": 1, "ntasks_per_node": 1,
            "array_parallelism": settings.max_parallel,
            "signal_delay_s": SIGNAL_DELAY_S,
        }
        if settings.partition:
            params["partition"] = settings.partition
        if settings.exclusive:
            params["exclusive"] = True
        if settings.gpus_per_job:
            params["gpus_per_node"] = settings.gpus_per_job
        executor.update_parameters(**params)
        try:
            jobs = executor.map_array(run_point, [str(path) for _, path in attempts])
        except (subprocess.CalledProcessError, OSError) as exc:
            output = getattr(exc, "output", None) or getattr(exc, "stderr", None) or exc
            raise MlperfPilotError(f"sbatch refused the sweep's job array: "
                                   f"{_first_line(output)}", hint=_HINT) from None
        return [Submission(point_id, job.job_id, str(job.paths.stderr))
                for (point_id, _), job in zip(attempts, jobs, strict=True)]

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        wanted = set(job_ids)
        if not wanted:
            return {}
        listed = _client(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"])
        found: dict[str, JobInfo] = {}
        for line in listed.splitlines():
            job_id, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            if job_id in wanted:
                found[job_id] = JobInfo(state.strip(), reason.strip() or None)
        for job_id, info in list(found.items()):
            if not (info.waiting or info.active) and info.state != "COMPLETED":
                found[job_id] = _with_exit_code(job_id, info)
        return found

    def cancel(self, job_ids: Sequence[str]) -> list[str]:
        if not job_ids:
            return []
        _client(["scancel", *job_ids])
        return list(job_ids)


def _with_exit_code(job_id: str, info: JobInfo) -> JobInfo:
    try:
        shown = _client(["scontrol", "-o", "show", "job", job_id])
    except MlperfPilotError:
        return info
    fields = dict(part.split("=", 1) for part in shown.split() if "=" in part)
    return JobInfo(fields.get("JobState", info.state), fields.get("Reason", info.reason),
                   fields.get("ExitCode"))


def _client(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise MlperfPilotError(f"{argv[0]} is not installed here", hint=_HINT) from None
    except subprocess.TimeoutExpired:
        raise MlperfPilotError(f"{argv[0]} did not answer in 60 s", hint=_HINT) from None
    if done.returncode != 0:
        raise MlperfPilotError(f"{argv[0]} failed: {_first_line(done.stderr or done.stdout)}",
                               hint=_HINT)
    return done.stdout


def _first_line(text: object) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = str(text).strip().splitlines()
    return lines[-1] if lines else "(no output)"


__all__ = ["SlurmExecutor"]

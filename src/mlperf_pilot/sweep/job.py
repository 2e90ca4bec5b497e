"""One sweep job: one ``mlperf-pilot run`` of one point, in a process of its own.

LoadGen runs one test per process, so a job never runs a point in the process that
launched it: :func:`run_point` starts ``python -m mlperf_pilot run --config
ATTEMPT/point.yaml --json`` (the point's settings, its own results folder, the sweep's
store and asset cache) and waits for it. The attempt folder gets what the scheduler's
view cannot tell: ``run.json`` (the run's JSON summary, or its error object),
``run.log`` (its stderr), ``pid`` while it runs and ``outcome.json`` (exit code, times,
host) when it ended. A job the scheduler kills before the run ends leaves no
``outcome.json``; the sweep's state then takes the scheduler's reason.

Executors call :func:`run_point` as they like (locally in a thread, on Slurm through
submitit's pickled call); it imports nothing heavy and prints nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

POINT_FILE = "point.yaml"
SUMMARY_FILE = "run.json"
LOG_FILE = "run.log"
OUTCOME_FILE = "outcome.json"
PID_FILE = "pid"


def run_argv(attempt_dir: Path) -> list[str]:
    """The command a job runs (this interpreter's mlperf-pilot)."""
    return [sys.executable, "-m", "mlperf_pilot", "run", "--config",
            str(attempt_dir / POINT_FILE), "--json"]


def run_point(attempt_dir: str | Path) -> int:
    """Run the point whose files are in ``attempt_dir``; returns the run's exit code."""
    from mlperf_pilot.storage import write_text_atomic

    folder = Path(attempt_dir)
    started = _now()
    if os.environ.get("SLURM_JOB_ID") and threading.current_thread() is threading.main_thread():
        # submitit asks Slurm for SIGUSR2 shortly before the time limit (to requeue
        # checkpointable jobs); a run has nothing to checkpoint: ignored here and in the
        # run (inherited), the time limit's SIGTERM then stops the run's test, which is
        # recorded as interrupted, and Slurm says TIMEOUT
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    with open(folder / SUMMARY_FILE, "wb") as out, open(folder / LOG_FILE, "wb") as err:
        proc = subprocess.Popen(run_argv(folder), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, cwd=folder)
        write_text_atomic(folder / PID_FILE, f"{proc.pid}\n")
        code = proc.wait()
    write_text_atomic(folder / OUTCOME_FILE, json.dumps({
        "exit_code": code, "started": started, "finished": _now(),
        "host": socket.gethostname(), "pid": proc.pid,
        "slurm_job_id": _slurm_job_id()}, indent=2) + "\n")
    return code


def read_outcome(attempt_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((attempt_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_summary(attempt_dir: Path) -> dict[str, Any] | None:
    """The run's ``--json`` output (a summary, or ``{"ok": false, "error": ...}``)."""
    try:
        data = json.loads((attempt_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_pid(attempt_dir: Path) -> int | None:
    """The run's PID while it is alive (a job of this host), else None."""
    if (attempt_dir / OUTCOME_FILE).exists():
        return None
    try:
        pid = int((attempt_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _slurm_job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


__all__ = ["LOG_FILE", "OUTCOME_FILE", "POINT_FILE", "SUMMARY_FILE", "read_outcome",
           "read_summary", "run_argv", "run_point", "running_pid"]

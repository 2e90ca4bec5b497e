"""Run one LoadGen test: construct the SUT and QSL handles, start, tear down.

LoadGen's logs go to the run's own folder. The audit config is always passed as an
absolute path inside that folder: LoadGen otherwise looks for ``audit.config`` in the
current directory, and a stray file left there by someone else would silently turn a
normal run into a compliance run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.datasets.qsl import SampleStore

if TYPE_CHECKING:
    from mlperf_pilot.sut.base import Sut

AUDIT_CONFIG = "audit.config"


def quiet_log_settings(log_dir: Path, *, trace: bool = False) -> Any:
    """LoadGen's LogSettings: logs into ``log_dir``, no summary on stdout; the trace
    (mlperf_log_trace.json: a ``Sample`` event per sample with its scheduled and
    completion times) only with ``trace``."""
    import mlperf_loadgen as lg

    output = lg.LogOutputSettings()
    output.outdir = str(log_dir)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = trace
    return log_settings


def run_loadgen(
    sut: Sut,
    store: SampleStore,
    settings: Any,
    log_dir: Path,
    *,
    performance_sample_count: int,
    audit_config: Path | None = None,
    monitor: Callable[[], None] | None = None,
    monitor_interval_s: float = 0.25,
    trace: bool = False,
) -> None:
    """Blocks until LoadGen finishes; ``monitor`` is called periodically meanwhile."""
    import mlperf_loadgen as lg

    log_dir.mkdir(parents=True, exist_ok=True)
    log_settings = quiet_log_settings(log_dir, trace=trace)
    audit = (audit_config or (log_dir / AUDIT_CONFIG)).resolve()

    stop = threading.Event()
    watcher = None
    if monitor is not None:
        def watch() -> None:
            while not stop.wait(monitor_interval_s):
                monitor()

        watcher = threading.Thread(target=watch, name="loadgen-monitor", daemon=True)
        watcher.start()

    sut_handle = lg.ConstructFastSUT(sut.issue, sut.flush)
    qsl_handle = lg.ConstructQSL(
        store.count, min(performance_sample_count, store.count), store.load, store.unload
    )
    try:
        lg.StartTestWithLogSettings(sut_handle, qsl_handle, settings, log_settings, str(audit))
    finally:
        lg.DestroyQSL(qsl_handle)
        lg.DestroySUT(sut_handle)
        stop.set()
        if watcher is not None:
            watcher.join()
        if monitor is not None:
            monitor()
        _drop_empty_trace(log_dir)


def _drop_empty_trace(log_dir: Path) -> None:
    """LoadGen creates mlperf_log_trace.json even with tracing off; drop it when empty."""
    trace = log_dir / "mlperf_log_trace.json"
    try:
        if trace.exists() and trace.stat().st_size == 0:
            trace.unlink()
    except OSError:
        pass

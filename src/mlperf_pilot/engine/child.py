"""One LoadGen test in its own process.

LoadGen reads mlperf.conf only on the first ``TestSettings.FromConfig`` call of a
process; every later call skips it and logs "Multiple conf files are used", which the
submission checker rejects. So, as the reference does, each (scenario, mode) test runs
in a fresh process: ``python -m mlperf_pilot.engine.child JOB.json``. The parent's
launcher (:mod:`mlperf_pilot.engine.launch`) writes the job, reads ``total N`` (the
samples LoadGen plans, from its live detail log) and ``progress N`` lines from the
child's stdout for its progress bar, and reads back the RunRecord the child
writes next to LoadGen's logs. The child's stderr goes to ``records/<mode>.stderr.txt``.
The job is self-contained (:mod:`mlperf_pilot.engine.job`): the catalog is never read
here. :func:`run_test` is also what the inline launcher calls, in its own process.

SIGINT/SIGTERM (the parent forwards them; a terminal's Ctrl-C reaches both): LoadGen
runs in a thread, so the main thread takes the signal at once, writes the record
FAILED with ``interrupted`` = the signal and the partial logs' folder, and the process
leaves with 128 + the signal's number (LoadGen has no way to stop a test early). On
Linux the child gets SIGHUP when its parent dies, and records that.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlperf_pilot.accuracy import GroundTruth, compute_accuracy
from mlperf_pilot.datasets.qsl import SampleStore
from mlperf_pilot.decoders import Geometry, create_decoder
from mlperf_pilot.engine.job import TestJob
from mlperf_pilot.errors import MlperfPilotError
from mlperf_pilot.interrupts import HANDLED, Interrupted, raise_once
from mlperf_pilot.loadgen.logs import read_result
from mlperf_pilot.loadgen.planned import read_planned
from mlperf_pilot.loadgen.run import run_loadgen
from mlperf_pilot.loadgen.settings import make_test_settings
from mlperf_pilot.report.text import reference_line
from mlperf_pilot.results.provenance import utc_now
from mlperf_pilot.results.records import AccuracyRecord, RunRecord, write_record
from mlperf_pilot.results.submittable import apply as judge_record
from mlperf_pilot.sut.registry import sut_kind
from mlperf_pilot.vocab import Mode, RunStatus


def _emit_progress(count: int) -> None:
    sys.stdout.write(f"progress {count}\n")
    sys.stdout.flush()


def _emit_total(total: int) -> None:
    sys.stdout.write(f"total {total}\n")
    sys.stdout.flush()


def _monitor(sut: Any, log_dir: Path, mode: Mode) -> Callable[[], None]:
    """The monitor thread's call: ``total N`` once LoadGen's detail log says how many
    samples it plans (performance tests; loadgen.planned), then ``progress N``."""
    pending = [mode is Mode.PERFORMANCE]

    def monitor() -> None:
        if pending[0]:
            total = read_planned(log_dir)
            if total is not None:
                pending[0] = False
                _emit_total(total)
        _emit_progress(sut.stats.completed + sut.stats.failed)

    return monitor


def run_test(job: TestJob, *, progress_lines: bool = True) -> RunRecord:
    """Run the job's LoadGen test in this process and write its RunRecord."""
    log_dir = job.logs
    if log_dir.exists() and job.log_dir is None:
        shutil.rmtree(log_dir)
    model = job.model
    record = RunRecord(
        run_id=job.run_id, model=model.name, mlperf_model=model.mlperf_model,
        backend=job.sut_name, backend_version=None, device=job.device_name,
        device_in_use="(not loaded)", system=job.system, scenario=job.scenario,
        mode=job.mode, log_dir=str(log_dir), started=utc_now(),
    )
    started = time.monotonic()
    interrupted: Interrupted | None = None
    sut: Any = None
    answered: Any = None  # the SUT, once the LoadGen test is about to start
    try:
        dataset = job.dataset.open()
        store = SampleStore(dataset)
        decoder = create_decoder(model.fmt.postprocess, Geometry.of(model.recipe,
                                                                   dataset.image_hw))
        sut = sut_kind(job.sut.kind).open(job, store, decoder)
        described = sut.describe()
        record.backend, record.backend_version = described.name, described.version
        record.device_in_use = described.device_in_use
        record.sut_kind, record.sut_details = described.kind, dict(described.details)
        settings = _test_settings(job)
        answered = sut
        monitor = _monitor(sut, log_dir, job.mode) if progress_lines else None

        def test() -> None:
            with sut:
                run_loadgen(
                    sut, store, settings, log_dir,
                    performance_sample_count=model.performance_sample_count,
                    audit_config=job.audit_config,
                    monitor=monitor,
                    monitor_interval_s=job.progress_interval_s,
                    trace=job.trace,
                )

        _in_thread(test)
        # again after the test: what the SUT saw during it (the serverless functions'
        # timings); the same details for SUTs that keep none
        record.sut_details = dict(sut.describe().details)
        truth = GroundTruth.of(dataset, use_inv_map=model.fmt.postprocess.accuracy_inv_map)
        _conclude(record, log_dir, job, sut, store, dataset, model.accuracy_metric, truth)
    except MlperfPilotError as exc:
        record.status = RunStatus.FAILED
        record.reasons.append(exc.message)
    except Interrupted as exc:
        interrupted = exc
        _mark_interrupted(record, exc, log_dir, answered)
    except Exception as exc:  # a bug: the reason is kept, the traceback goes to stderr
        record.status = RunStatus.FAILED
        record.reasons.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        close = getattr(sut, "close", None)
        if interrupted is None and close is not None:  # else LoadGen may still call it
            close()
        if job.facts is not None:  # what a submission would make of it, in words
            judge_record(record, job.facts)
        record.finished = utc_now()
        record.duration_s = round(time.monotonic() - started, 3)
        record.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        write_record(record, job.record_file)
    return record


def _test_settings(job: TestJob) -> Any:
    """TestSettings from the job's user.conf text (in a temporary file while LoadGen
    reads it: FromConfig takes a path)."""
    with tempfile.TemporaryDirectory(prefix="mlperf-pilot-conf-") as folder:
        conf = Path(folder) / "user.conf"
        conf.write_text(job.user_conf, encoding="utf-8")
        settings = make_test_settings(conf, job.model.mlperf_model, job.scenario, job.mode)
    if job.test05:
        settings.test05 = True
    return settings


def _in_thread(test: Callable[[], None]) -> None:
    """Run the LoadGen test in a thread: LoadGen blocks in C++ until the test ends, and
    only a main thread that runs Python can take SIGINT/SIGTERM meanwhile."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            test()
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="loadgen-test", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if failure:
        raise failure[0]


def _mark_interrupted(record: RunRecord, exc: Interrupted, log_dir: Path,
                      answered: Any) -> None:
    record.status = RunStatus.FAILED
    record.interrupted = exc.name
    why = " (the mlperf-pilot process that started it ended)" \
        if exc.signum == signal.SIGHUP else ""
    if answered is None:
        record.reasons.append(f"interrupted by {exc.name}{why} before the LoadGen test "
                              "started")
        return
    stats = answered.stats
    record.samples_failed = stats.failed
    record.reasons.append(
        f"interrupted by {exc.name}{why} during the LoadGen test, after "
        f"{stats.completed} answered sample(s); the partial LoadGen logs are kept in "
        f"{log_dir}")


_PARENT = [os.getppid()]
PARENT_ENDED = signal.SIGHUP  # what this process gets when its parent dies (Linux)


def _stop_with_parent() -> None:
    """Linux: SIGHUP this process when the process that started it dies (even by
    SIGKILL), so a test never runs on for minutes with nobody to read it. (Not SIGTERM:
    that is what the parent forwards, and its thread may be the one that died first.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, PARENT_ENDED)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != _PARENT[0]:  # it died before prctl took effect
        os.kill(os.getpid(), PARENT_ENDED)


def _conclude(record: RunRecord, log_dir: Path, job: TestJob, sut: Any,
              store: SampleStore, dataset: Any, metric: str,
              truth: GroundTruth) -> None:
    result = read_result(log_dir)
    record.loadgen = result
    record.metric_name = result.metric_name
    record.metric_value = result.metric_value
    record.metric_unit = result.metric_unit
    reasons: list[str] = []
    stats = sut.stats
    record.samples_failed = stats.failed
    record.errors = dict(stats.error_counts)
    reasons.extend(stats.reasons())  # "N sample(s) answered NaN", "M sample(s) failed: ..."
    if store.error:
        reasons.append(store.error)
    if job.mode is Mode.PERFORMANCE:
        reasons.extend(loadgen_reasons(result))
        record.reference_line = reference_line(record.scenario, result)
    else:
        accuracy = compute_accuracy(metric, log_dir / "mlperf_log_accuracy.json", truth)
        (log_dir / "accuracy.txt").write_text(accuracy.text, encoding="utf-8")
        record.accuracy = AccuracyRecord(
            metric=accuracy.metric, value=accuracy.value, text=accuracy.text.strip(),
            total=accuracy.total, empty=accuracy.empty,
        )
        if accuracy.total != dataset.count:
            reasons.append(f"the accuracy log covers {accuracy.total} of {dataset.count} samples")
    reasons.extend(f"LoadGen error: {m}" for m in result.error_messages)
    record.reasons.extend(reasons)
    record.status = RunStatus.INVALID if reasons else RunStatus.VALID


def loadgen_reasons(result: Any) -> list[str]:
    """Why LoadGen judged a performance run INVALID, in words."""
    if result.valid is not False:
        return []
    checks = {
        "min duration": result.min_duration_met,
        "min queries": result.min_queries_met,
        "early stopping": result.early_stopping_met,
        "latency constraint": result.performance_constraints_met,
    }
    failed = [name for name, met in checks.items() if met is False]
    what = ", ".join(failed) if failed else "see mlperf_log_summary.txt"
    hint = f" ({result.invalid_reason.strip()})" if result.invalid_reason else ""
    return [f"LoadGen: INVALID, {what} not satisfied{hint}"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m mlperf_pilot.engine.child JOB.json\n")
        return 2
    for sig in (*HANDLED, PARENT_ENDED):
        signal.signal(sig, raise_once)
    _stop_with_parent()
    try:
        job = TestJob.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
        record = run_test(job)
    except Interrupted as exc:  # before the record could be started: the parent writes it
        sys.stderr.write(f"interrupted by {exc.name} before the test started\n")
        return exc.exit_code
    if record.interrupted:
        # LoadGen's threads cannot be stopped or joined: leave without waiting for them
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.Signals[record.interrupted].value)
    return 0 if record.status != RunStatus.FAILED else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Run folders: every test keeps its own files, whatever later runs do.

The results tree ``<results>/<system>/<model>/<scenario>/`` (results.layout) holds the
*latest* run of each scenario (what ``submission generate`` reads); a rerun replaces
it. So every test also gets an immutable folder of its own::

    <results-dir>/runs/<test id>/
        mlperf_log_summary.txt, mlperf_log_detail.txt, ...   its LoadGen logs
        accuracy.txt                                         (accuracy runs)
        user.conf, run_spec.json, versions.json              what it ran with
        record.json                                          its record (log_dir: here)
        compliance.json, verify_*.txt                        (compliance tests)

The files are hard links to those of the latest folder (``os.link``, a copy where the
file system refuses links), so keeping them costs no space. A run never writes a file
of a finished test again: the next run's staging folder starts as a *copy* of the
previous one and is renamed into place, so the linked files keep their content.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlperf_pilot.results.records import RunRecord, write_record
from mlperf_pilot.results.staging import relocate_text
from mlperf_pilot.vocab import Mode

RUNS_DIR = "runs"
_SCENARIO_FILES = ("user.conf", "run_spec.json", "versions.json")


def run_folder(results_dir: Path, test_id: str) -> Path:
    return Path(results_dir) / RUNS_DIR / test_id


def keep_run_folder(results_dir: Path, test_id: str, record: RunRecord, *,
                    extra: tuple[Path, ...] = (), own_logs: bool = True) -> RunRecord:
    """Link the test's LoadGen logs (and the scenario's user.conf, run_spec.json and
    versions.json, and the files ``extra`` names) into its run folder and write its
    record there; returns the record with ``log_dir`` naming the run folder.
    ``own_logs`` False: the logs in ``record.log_dir`` are another test's now (a find
    probe's folder, reused by the next probe): only the record is kept."""
    logs = Path(record.log_dir)
    folder = run_folder(results_dir, test_id)
    folder.mkdir(parents=True, exist_ok=True)
    if logs.is_dir() and own_logs:
        for item in sorted(logs.iterdir()):
            if item.is_file() and item.name not in ("record.json", "run.json"):
                link_or_copy(item, folder / item.name)
    scenario_root = _scenario_root(logs)
    if scenario_root is not None:
        # an accuracy run made beside a kept performance run has its own user.conf
        own = scenario_root / "records" / "accuracy.user.conf"
        if record.mode is Mode.ACCURACY and own.is_file():
            link_or_copy(own, folder / "user.conf")
        for name in _SCENARIO_FILES:
            if (scenario_root / name).is_file() and not (folder / name).exists():
                link_or_copy(scenario_root / name, folder / name)
    for path in extra:
        if path.is_file():
            link_or_copy(path, folder / path.name)
    kept = record.model_copy(update={
        "log_dir": str(folder),
        "reasons": [relocate_text(reason, logs, folder) for reason in record.reasons]})
    write_record(kept, folder / "record.json")
    return kept


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` is ``source``'s file: a hard link, else a copy (another file system,
    or one without hard links)."""
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _scenario_root(logs: Path) -> Path | None:
    """The scenario folder a log folder belongs to (the one holding run_spec.json):
    ``accuracy/``, ``performance/run_1``, ``.attempts/performance-N``,
    ``.compliance/TEST01``."""
    for folder in (logs, *list(logs.parents)[:3]):
        if (folder / "run_spec.json").is_file():
            return folder
    return None


def is_run_folder(path: Path, test_id: str) -> bool:
    """Whether ``path`` is the run folder of ``test_id`` (what prune may delete)."""
    path = Path(path)
    return path.name == test_id and path.parent.name == RUNS_DIR


__all__ = ["RUNS_DIR", "is_run_folder", "keep_run_folder", "link_or_copy", "run_folder"]

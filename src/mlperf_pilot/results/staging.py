"""Writing a results folder safely: one run at a time, a scenario's files all at once.

- **The lock.** ``<results>/<system>/<model>/`` is locked (``filelock``) for the whole
  run, before the model is loaded: one run writes a system's results of one model, so
  two runs can never interleave files in one scenario folder or share a user.conf (and
  two benchmarks of one system at once would disturb each other's timings anyway). A
  second run is refused at once (:class:`ResultsInUseError`, exit 2) naming the holder
  (pid, start time, command) from ``.mlperf-pilot.lock.json``. The kernel drops the
  lock when its holder dies, so a killed run never leaves the folder locked.
- **The staging folder.** A scenario is run in ``<model>/.<scenario>.staging/``, which
  starts as a copy of the previous ``<scenario>/`` minus what this run redoes, and is
  renamed into place when the scenario is finished (the previous folder is deleted
  only then). Records name their final paths (:func:`relocate`).
- **What a run redoes.** An accuracy run replaces ``accuracy/`` and its record; a
  performance (or find) run replaces ``performance/``, ``.attempts/``, its record,
  ``user.conf``, ``run_spec.json`` and ``versions.json`` (they describe the
  performance run); either replaces the compliance results, which were judged against
  them. The rest is carried over: a performance rerun keeps the accuracy result (an
  accuracy run does not depend on the performance targets), an accuracy-only run
  keeps the performance run with the user.conf that made it and writes its own as
  ``records/accuracy.user.conf``, a compliance-only run keeps everything it tests.
- **Interrupted.** When a run stops before a scenario is finished, its staging folder
  is renamed into place if the scenario had no previous folder, and otherwise to
  ``<model>/.<scenario>.interrupted/`` (replacing an older one) beside the previous
  results, which stay complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from mlperf_pilot.config import Mode, Scenario
from mlperf_pilot.errors import ResultsInUseError, StoreError
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.storage import write_text_atomic

LOCK_FILE = ".mlperf-pilot.lock"
HOLDER_FILE = ".mlperf-pilot.lock.json"
_COMPLIANCE = re.compile(r"TEST\d+$")


class ResultsLock:
    """The lock of one ``<results>/<system>/<model>/`` folder (a context manager)."""

    def __init__(self, folder: Path, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the results folder {self.folder}: "
                             f"{exc.strerror or exc}",
                             hint="choose a writable --results-dir") from exc
        lock = FileLock(str(self.folder / LOCK_FILE), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ResultsInUseError(
                f"results folder {self.folder} is in use by another run ({self._holder()})",
                hint="wait for it to finish, or write to another --results-dir or "
                     "--system-name") from None
        self._lock = lock
        holder = {"pid": os.getpid(), "command": self.command,
                  "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        _write_json(self.folder / HOLDER_FILE, holder)

    def release(self) -> None:
        if self._lock is not None:
            (self.folder / HOLDER_FILE).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def _holder(self) -> str:
        try:
            data = json.loads((self.folder / HOLDER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"lock {self.folder / LOCK_FILE}"
        text = f"pid {data.get('pid')}, since {data.get('started')}"
        return text + (f": {data['command']}" if data.get("command") else "")

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ScenarioStage:
    """One scenario's run into its staging folder, then into place."""

    def __init__(self, final: ScenarioPaths, *, accuracy: bool, performance: bool) -> None:
        self.final = final
        self.redo_accuracy = accuracy
        self.redo_performance = performance
        name = final.root.name
        self.staging = ScenarioPaths(final.root.with_name(f".{name}.staging"))
        self.interrupted = final.root.with_name(f".{name}.interrupted")
        self._replaced = final.root.with_name(f".{name}.replaced")

    def begin(self) -> ScenarioPaths:
        """The staging folder, holding what this run carries over."""
        self._recover()
        if self.final.root.is_dir():
            shutil.copytree(self.final.root, self.staging.root, symlinks=True,
                            ignore=self._redone)
        else:
            self.staging.root.mkdir(parents=True)
        return self.staging

    @property
    def carried_performance(self) -> bool:
        """The previous performance run (and the user.conf that made it) is kept."""
        return not self.redo_performance and (
            self.staging.log_dir(Mode.PERFORMANCE) / "mlperf_log_detail.txt").is_file()

    def commit(self) -> Path:
        """Put the finished scenario in place; the previous folder goes only now."""
        relocate(self.staging.root, self.final.root)
        if self.final.root.exists():
            os.rename(self.final.root, self._replaced)
            os.rename(self.staging.root, self.final.root)
            shutil.rmtree(self._replaced, ignore_errors=True)
        else:
            os.rename(self.staging.root, self.final.root)
        return self.final.root

    def keep_partial(self) -> tuple[Path, bool]:
        """An unfinished scenario: into place when there was nothing before, else beside
        the previous results. Returns (where it went, whether the previous was kept)."""
        if not self.staging.root.is_dir():
            return self.final.root, self.final.root.exists()
        if not self.final.root.exists():
            return self.commit(), False
        if self.interrupted.exists():
            shutil.rmtree(self.interrupted)
        relocate(self.staging.root, self.interrupted)
        os.rename(self.staging.root, self.interrupted)
        return self.interrupted, True

    def _recover(self) -> None:
        """Leftovers of a run that was killed (its lock is gone with it)."""
        if self._replaced.exists():
            if self.final.root.exists():
                shutil.rmtree(self._replaced)  # killed after the swap
            else:
                os.rename(self._replaced, self.final.root)  # killed between the renames
        if self.staging.root.exists():
            if self.interrupted.exists():
                shutil.rmtree(self.interrupted)
            relocate(self.staging.root, self.interrupted)
            os.rename(self.staging.root, self.interrupted)

    def _redone(self, directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        either = self.redo_accuracy or self.redo_performance
        if here == self.final.root:
            skip: set[str] = set()
            if self.redo_accuracy:
                skip.add("accuracy")
            if self.redo_performance:
                skip |= {"performance", ".attempts", "user.conf", "run_spec.json",
                         "versions.json"}
            if either:
                skip |= {".compliance", *(n for n in names if _COMPLIANCE.match(n))}
            return skip & set(names)
        if here == self.final.root / "records":
            def redone(name: str) -> bool:
                stem = name.split(".", 1)[0]
                return ((stem == "accuracy" and self.redo_accuracy)
                        or (stem == "performance" and self.redo_performance)
                        or (bool(_COMPLIANCE.match(stem)) and either))
            return {n for n in names if redone(n)}
        return set()


class _Collected(Protocol):
    """What RunStages moves along with a scenario folder: the records (final ones and
    superseded attempts) and compliance records the session collected for it."""

    records: list[Any]
    attempts: list[Any]
    compliance: list[Any]


class RunStages:
    """The scenarios of one run, one at a time in its staging folder: committed when
    finished, kept (:meth:`ScenarioStage.keep_partial`) when the run stops early. The
    paths that a scenario's collected records and compliance records name follow its
    folder. ``partial_at``: where an unfinished scenario was kept."""

    def __init__(self, results_dir: Path, system: str, model: str, *,
                 find: bool, modes: tuple[Mode, ...]) -> None:
        self.collected: _Collected | None = None
        self.results_dir, self.system, self.model = results_dir, system, model
        self.find, self.modes = find, modes
        self.partial_at: Path | None = None
        self._stage: ScenarioStage | None = None  # the scenario being written

    def begin(self, scenario: Scenario, collected: _Collected) -> ScenarioStage:
        """Stage ``scenario``; its folder is ``stage.staging``; the paths in
        ``collected`` (from here on) follow the folder when it moves."""
        final = ScenarioPaths.of(self.results_dir, self.system, self.model, scenario)
        stage = ScenarioStage(final, accuracy=not self.find and Mode.ACCURACY in self.modes,
                              performance=self.find or Mode.PERFORMANCE in self.modes)
        stage.begin()
        self.collected, self._stage = collected, stage
        return stage

    def commit(self) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            self._relocate_collected(stage.staging.root, stage.commit())

    def keep_partial(self) -> tuple[Path | None, bool]:
        """The run stopped: keep the unfinished scenario. Returns (where it went,
        whether the previous results were kept)."""
        stage, self._stage = self._stage, None
        if stage is None:
            return None, False
        try:
            where, previous_kept = stage.keep_partial()
        except OSError:  # e.g. the disk is full: the staging folder stays as it is
            self.partial_at = stage.staging.root
            return stage.staging.root, stage.final.root.exists()
        self._relocate_collected(stage.staging.root, where)
        self.partial_at = where
        return where, previous_kept

    def _relocate_collected(self, old: Path, new: Path) -> None:
        collected = self.collected
        if collected is None:
            return
        for record in (*collected.records, *collected.attempts):
            record.log_dir = relocate_text(record.log_dir, old, new)
            record.reasons = [relocate_text(r, old, new) for r in record.reasons]
        for check in collected.compliance:
            check.run_dir = relocate_text(check.run_dir, old, new)
            check.test_dir = relocate_text(check.test_dir, old, new)
            check.reasons = [relocate_text(r, old, new) for r in check.reasons]


def relocate(old: Path, new: Path) -> None:
    """Rewrite the paths under ``old`` in the folder's records (records/*.json and the
    kept attempts' record.json) to the same paths under ``new``. LoadGen's own files
    are never touched."""
    files = [*(old / "records").glob("*.json"), *(old / ".attempts").glob("*/record.json")]
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        moved = relocate_value(data, old, new)
        if moved != data:
            _write_json(path, moved)


def relocate_value(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every string that is ``old`` or a path under it moved to ``new``."""
    if isinstance(value, str):
        return relocate_text(value, old, new)
    if isinstance(value, list):
        return [relocate_value(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: relocate_value(v, old, new) for k, v in value.items()}
    return value


def relocate_text(text: str, old: Path, new: Path) -> str:
    """Every occurrence of the path ``old`` in ``text`` (alone or followed by a path
    separator) replaced by ``new``."""
    before = str(old)
    pattern = re.compile(re.escape(before) + r"(?=$|[/\\\s)'\":,;])")
    return pattern.sub(lambda _: str(new), text)


def _write_json(path: Path, data: Any) -> None:
    # whole or not at all; on a full disk no temp file stays and the error names path
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


__all__ = ["HOLDER_FILE", "LOCK_FILE", "ResultsLock", "RunStages", "ScenarioStage", "relocate",
           "relocate_text", "relocate_value"]

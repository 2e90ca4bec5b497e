"""Removing tests from the store (``mlperf-pilot results prune``).

A test is pruned when it matches every criterion given: started before a time
(``older_than``), a status, a kind, a model, or being older than the ``keep_last``
most recent tests of its configuration (system, model, scenario, mode). Its row goes
(one transaction) and then its run folder (results.runs), never other files: the
latest results folder that ``submission generate`` reads and the logs an import
pointed at stay where they are.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.results.provenance import as_utc, utc_now
from mlperf_pilot.results.runs import is_run_folder
from mlperf_pilot.results.store import ResultsStore

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Pruned:
    """One test pruned (or that would be): its id, start, status and run folder (None:
    it has none of its own)."""

    test_id: str
    started: str
    status: str
    folder: str | None


def parse_age(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """The time ``text`` names: an age (``30d``, ``12h``, ``2w``, ``90m``, ``45s``)
    before ``now``, or an ISO date/time (UTC when it has no zone)."""
    now = now or utc_now()
    match = _AGE.match(text)
    if match:
        return now - _dt.timedelta(seconds=float(match.group(1)) * _UNITS[
            match.group(2).lower()])
    try:
        return as_utc(_dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ConfigError(f"--older-than {text!r} is neither an age nor a date",
                          hint="give an age such as 30d, 12h, 2w, or a date such as "
                               "2025-06-01") from None


def prune(store: ResultsStore, *, older_than: _dt.datetime | None = None,
          keep_last: int | None = None, status: str | None = None, kind: str | None = None,
          model: str | None = None, ids: tuple[str, ...] = (),
          dry_run: bool = False) -> list[Pruned]:
    """Prune the tests matching every criterion given (see the module's docstring);
    returns them, oldest first. With none given nothing is pruned (ConfigError)."""
    if older_than is None and keep_last is None and not status and not kind \
            and not model and not ids:
        raise ConfigError("results prune needs a criterion: nothing would be kept",
                          hint="give --older-than, --keep-last, --status, --kind, --model "
                               "or --id (add --dry-run to see what would go)")
    wanted = {store.get(test_id).test_id for test_id in ids}
    rows = store.rows()
    newest: dict[tuple[str, str, str, str], list[str]] = {}
    for row in rows:  # oldest first: the last keep_last of each configuration stay
        key = (row["system"], row["model"], row["scenario"], row["mode"])
        newest.setdefault(key, []).append(row["test_id"])
    kept_recent = set()
    if keep_last is not None:
        for tests in newest.values():
            kept_recent.update(tests[len(tests) - keep_last:] if keep_last else [])
    cutoff = as_utc(older_than).replace(microsecond=0).isoformat() if older_than else None
    chosen: list[Pruned] = []
    for row in rows:
        if ((cutoff is not None and row["started"] >= cutoff)
                or (keep_last is not None and row["test_id"] in kept_recent)
                or (status and row["status"] != status.upper())
                or (kind and row["kind"] != kind)
                or (model and row["model"] != model)
                or (ids and row["test_id"] not in wanted)):
            continue
        folder = row["log_dir"] if is_run_folder(Path(row["log_dir"]), row["test_id"]) \
            else None
        chosen.append(Pruned(row["test_id"], row["started"], row["status"], folder))
    if not dry_run and chosen:
        store.remove([p.test_id for p in chosen])
        for pruned in chosen:
            if pruned.folder is not None:
                shutil.rmtree(pruned.folder, ignore_errors=True)
    return chosen


__all__ = ["Pruned", "parse_age", "prune"]

"""The results store: every LoadGen test ever run, one row each, in one SQLite file.

``open_store()`` opens (creating or upgrading, see :mod:`.store_schema`) the store at
``--store PATH``, else ``$MLPERF_PILOT_STORE``, else ``<results-dir>/results.sqlite``.
A row per test carries what a listing filters and sorts on (run id, start, system,
model, backend / SUT kind, device, scenario, mode, execution mode, status and reasons,
headline metric, latency percentiles, accuracy, command, versions, host, the log files)
and the whole :class:`~mlperf_pilot.results.records.RunRecord` as JSON, so what
:meth:`ResultsStore.get` returns is the record as it was written. The LoadGen logs stay
files on disk; the record's ``log_dir`` names them.

Writes are transactions (``BEGIN IMMEDIATE``) on a database in WAL mode with a busy
timeout, so two runs that end at once both land. A file that is not a store (not
SQLite, or SQLite of another program, or a store made by a newer version) is a
:class:`~mlperf_pilot.errors.StoreError` naming the file and what to do.

Consumers (reports, exports) take the :class:`StoredTest` values this module returns;
only this module opens the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import StoreError
from mlperf_pilot.results.provenance import as_utc, utc_now, why_unreadable
from mlperf_pilot.results.records import RunRecord
from mlperf_pilot.results.store_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    tests_table,
    v2_columns,
    version_table,
)

STORE_ENV = "MLPERF_PILOT_STORE"
STORE_FILE = "results.sqlite"
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's transaction
KINDS = ("run", "attempt", "compliance", "bench", "sweep", "serverless", "import")
_LIST_HINT = "`mlperf-pilot results list` shows the test ids"


@dataclass(frozen=True)
class StoredTest:
    """One test as the store holds it: its id, how it was made (``kind``), its record
    (``record.log_dir``: its LoadGen logs), the resolved settings and its provenance
    (command, versions, host)."""

    test_id: str
    kind: str
    record: RunRecord
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def store_path(path: Path | None = None, *, results_dir: Path | None = None) -> Path:
    """Where the store is: ``path``, else ``$MLPERF_PILOT_STORE``, else
    ``<results_dir>/results.sqlite`` (``./results`` when no results dir is given)."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(results_dir if results_dir is not None else "results") / STORE_FILE


def open_store(path: Path | None = None, *, results_dir: Path | None = None) -> ResultsStore:
    """The store (see :func:`store_path`), created when absent, upgraded when older."""
    return ResultsStore(store_path(path, results_dir=results_dir))


def _first_free(wanted: str, taken: set[str]) -> str:
    """``wanted``, else ``wanted-2``, ``wanted-3``, ...: the first not in ``taken``."""
    chosen, n = wanted, 1
    while chosen in taken:
        n += 1
        chosen = f"{wanted}-{n}"
    return chosen


def default_test_id(record: RunRecord, label: str | None = None) -> str:
    """The readable id of a test: ``<run id>-<scenario>-<mode>`` (the run id names the
    whole ``mlperf-pilot run``), then ``-<label>`` (a compliance test's name, an
    attempt's number) when given."""
    base = f"{record.run_id}-{record.scenario.value}-{record.mode.value}"
    return f"{base}-{label}" if label else base


class ResultsStore:
    """The store in one SQLite file (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._engine = self._connect()
        self._tests = _metadata().tables["tests"]
        self._prepare()

    # ------------------------------------------------------------------ opening
    def _connect(self) -> Any:
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder, not a file",
                             hint=f"pass --store FILE (or set {STORE_ENV}) to a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of results store {self.path}: "
                             f"{exc.strerror or exc}",
                             hint=f"choose a writable --store (or {STORE_ENV})") from exc
        engine = create_engine(f"sqlite:///{self.path}", poolclass=NullPool,
                               connect_args={"timeout": BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below, explicitly
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            write = conn.get_execution_options().get("write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        """A connection in one transaction (IMMEDIATE for a write); the store's database
        errors leave as StoreError."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect().execution_options(write=write) as conn, \
                    conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> StoreError:
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())
        if "not a database" in cause or "malformed" in cause:
            return StoreError(f"results store {self.path} is not a SQLite database "
                              f"({cause})",
                              hint=f"move the file away (a new store is created in its "
                                   f"place) or pass another --store / {STORE_ENV}")
        if "locked" in cause or "busy" in cause:
            return StoreError(f"results store {self.path} stayed locked by another "
                              f"process for {BUSY_TIMEOUT_S:g} s ({cause})",
                              hint="retry when the other run has finished writing")
        return StoreError(f"results store {self.path} cannot be used: {cause}",
                          hint=f"check the file's permissions and free space, or pass "
                               f"another --store / {STORE_ENV}")

    def _prepare(self) -> None:
        """Create the schema in a new file, upgrade an older one, refuse others."""
        from sqlalchemy import insert, inspect, select

        versions = _metadata().tables["schema_version"]
        with self._transaction(write=False) as conn:  # the usual case: nothing to do
            if {"schema_version", "tests"} <= set(inspect(conn).get_table_names()) and \
                    conn.execute(select(versions.c.version)).scalar() == SCHEMA_VERSION:
                return
        with self._transaction(write=True) as conn:
            tables = set(inspect(conn).get_table_names())
            if not tables:
                self._tests.metadata.create_all(conn)
                conn.execute(insert(_metadata().tables["schema_version"]),
                             {"version": SCHEMA_VERSION})
                return
            if "schema_version" not in tables or "tests" not in tables:
                raise StoreError(
                    f"{self.path} is a SQLite database of another program, not a results "
                    f"store (tables: {', '.join(sorted(tables))})",
                    hint=f"pass --store (or {STORE_ENV}) naming a new or a store file")
            found = conn.execute(select(versions.c.version)).scalar()
            version = int(found) if found is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"results store {self.path} has schema version {version}, newer than "
                    f"this mlperf-pilot knows ({SCHEMA_VERSION})",
                    hint="upgrade mlperf-pilot (pip install -U mlperf-pilot), or pass "
                         "another --store")
            if version not in MIGRATIONS and version != SCHEMA_VERSION:
                raise StoreError(f"results store {self.path} has an unknown schema "
                                 f"version {found}",
                                 hint=f"pass another --store (or {STORE_ENV})")
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(versions.update().values(version=version))

    @property
    def schema_version(self) -> int:
        from sqlalchemy import select

        with self._transaction(write=False) as conn:
            return int(conn.execute(select(_metadata().tables["schema_version"].c.version))
                       .scalar())

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add(self, record: RunRecord, *, kind: str = "run", label: str | None = None,
            test_id: str | None = None, settings: Mapping[str, Any] | None = None,
            provenance: Mapping[str, Any] | None = None) -> str:
        """Record one test; returns its id (``test_id``, which must be free, else
        :func:`default_test_id` with ``-2``, ``-3``, ... when taken). ``settings`` and
        ``provenance`` default to those found beside the record's logs (run_spec.json,
        versions.json)."""
        from sqlalchemy import insert

        found_settings, found_provenance = settings_near(Path(record.log_dir))
        settings = dict(settings if settings is not None else found_settings)
        provenance = {**found_provenance, **dict(provenance or {})}
        provenance.setdefault("log_paths", log_paths(Path(record.log_dir)))
        row = _row(record, kind, settings, provenance)
        with self._transaction(write=True) as conn:
            wanted = test_id or default_test_id(record, label)
            taken = self._taken(conn, wanted)
            if test_id is not None and test_id in taken:
                raise StoreError(f"test {test_id} is in the results store {self.path} "
                                 "already", hint=_LIST_HINT)
            chosen = _first_free(wanted, taken)
            conn.execute(insert(self._tests), {**row, "test_id": chosen})
        return chosen

    def free_id(self, record: RunRecord, label: str | None = None) -> str:
        """The id :meth:`add` would give ``record`` now (to name its run folder)."""
        wanted = default_test_id(record, label)
        with self._transaction(write=False) as conn:
            return _first_free(wanted, self._taken(conn, wanted))

    def _taken(self, conn: Any, wanted: str) -> set[str]:
        """The stored ids that start with ``wanted``."""
        from sqlalchemy import select

        return set(conn.execute(select(self._tests.c.test_id).where(
            self._tests.c.test_id.startswith(wanted, autoescape=True))).scalars())

    def remove(self, test_ids: Sequence[str]) -> int:
        """Delete these rows (one transaction); returns how many there were."""
        from sqlalchemy import delete

        if not test_ids:
            return 0
        with self._transaction(write=True) as conn:
            result = conn.execute(delete(self._tests).where(
                self._tests.c.test_id.in_(list(test_ids))))
            return int(result.rowcount or 0)

    # ------------------------------------------------------------------ reading
    def get(self, test_id: str) -> StoredTest:
        """One test by its id or a unique prefix of it (e.g. its run's id)."""
        from sqlalchemy import select

        table = self._tests
        with self._transaction(write=False) as conn:
            rows = conn.execute(select(table).where(table.c.test_id == test_id)).all()
            if not rows:
                rows = conn.execute(select(table).where(
                    table.c.test_id.startswith(test_id, autoescape=True))
                    .order_by(table.c.started, table.c.test_id).limit(6)).all()
        if not rows:
            raise StoreError(f"no test {test_id!r} in the results store {self.path}",
                             hint=_LIST_HINT)
        if len(rows) > 1:
            ids = [row.test_id for row in rows[:5]]
            more = ", ..." if len(rows) > 5 else ""
            raise StoreError(f"{test_id!r} names {len(rows) if not more else 'more than 5'}"
                             f" tests: {', '.join(ids)}{more}",
                             hint="give more of the id; " + _LIST_HINT)
        return self._stored(rows[0])

    def select(self, *, ids: Sequence[str] = (), last: int | None = None,
               model: str | None = None, scenario: str | None = None,
               status: str | None = None, since: _dt.datetime | None = None,
               kind: str | None = None) -> list[StoredTest]:
        """The tests matching every filter given, oldest first; ``ids`` (ids or unique
        prefixes) come in the order given; ``last``: only the most recent N."""
        from sqlalchemy import select

        if ids:
            chosen = [self.get(test_id) for test_id in ids]
            return [t for t in chosen if _matches(t, model, scenario, status, since, kind)]
        table = self._tests
        query = select(table)
        if model:
            query = query.where(table.c.model == model)
        if scenario:
            query = query.where(table.c.scenario.ilike(scenario))
        if status:
            query = query.where(table.c.status == status.upper())
        if since is not None:
            query = query.where(table.c.started >= _iso(since))
        if kind:
            query = query.where(table.c.kind == kind)
        if last is not None:
            query = query.order_by(table.c.started.desc(), table.c.test_id.desc()).limit(last)
        else:
            query = query.order_by(table.c.started, table.c.test_id)
        with self._transaction(write=False) as conn:
            rows = conn.execute(query).all()
        tests = [self._stored(row) for row in rows]
        return tests[::-1] if last is not None else tests

    def rows(self) -> list[dict[str, Any]]:
        """Every row's columns (no JSON parsed), oldest first: for maintenance."""
        from sqlalchemy import select

        table = self._tests
        columns = [c for c in table.c if c.name != "record_json"]
        with self._transaction(write=False) as conn:
            result = conn.execute(select(*columns).order_by(table.c.started, table.c.test_id))
            return [dict(row._mapping) for row in result]

    def _stored(self, row: Any) -> StoredTest:
        try:
            record = RunRecord.model_validate_json(row.record_json)
            settings = json.loads(row.settings_json or "{}")
            provenance = json.loads(row.provenance_json or "{}")
        except ValueError as exc:
            raise StoreError(f"test {row.test_id} in results store {self.path} cannot be "
                             f"read: {why_unreadable(exc)}",
                             hint=f"remove it (`mlperf-pilot results prune --id "
                                  f"{row.test_id}`) and import its logs again") from exc
        return StoredTest(test_id=row.test_id, kind=row.kind, record=record,
                          settings=settings, provenance=provenance)


# ---------------------------------------------------------------------------- helpers

_METADATA: Any = None


def _metadata() -> Any:
    global _METADATA
    if _METADATA is None:
        from sqlalchemy import MetaData

        _METADATA = MetaData()
        tests_table(_METADATA)
        version_table(_METADATA)
    return _METADATA


def _iso(value: _dt.datetime) -> str:
    """A time as the store keeps it: UTC, to the second, ``+00:00`` (sorts as text)."""
    return as_utc(value).replace(microsecond=0).isoformat()


def _row(record: RunRecord, kind: str, settings: dict[str, Any],
         provenance: dict[str, Any]) -> dict[str, Any]:
    dumped = record.model_dump(mode="json")
    return {
        "run_id": record.run_id, "kind": kind, "started": _iso(record.started),
        "finished": _iso(record.finished) if record.finished else None,
        "system": record.system, "model": record.model, "backend": record.backend,
        "device": record.device, "scenario": record.scenario.value,
        "mode": record.mode.value, "status": record.status.value,
        "metric_name": record.metric_name, "metric_value": record.metric_value,
        "metric_unit": record.metric_unit, "log_dir": record.log_dir,
        "settings_json": json.dumps(settings, default=str),
        "provenance_json": json.dumps(provenance, default=str),
        "record_json": record.model_dump_json(),
        **v2_columns(dumped, provenance), "recorded": _iso(utc_now()),
    }


def _matches(test: StoredTest, model: str | None, scenario: str | None, status: str | None,
             since: _dt.datetime | None, kind: str | None) -> bool:
    record = test.record
    return ((not model or record.model == model)
            and (not scenario or record.scenario.value.lower() == scenario.lower())
            and (not status or record.status.value == status.upper())
            and (since is None or record.started >= as_utc(since))
            and (not kind or test.kind == kind))


LOG_FILES = {"summary": "mlperf_log_summary.txt", "detail": "mlperf_log_detail.txt",
             "accuracy": "mlperf_log_accuracy.json", "trace": "mlperf_log_trace.json",
             "accuracy_txt": "accuracy.txt"}


def log_paths(log_dir: Path) -> dict[str, str]:
    """The LoadGen files of a test's log folder that exist: role -> path."""
    return {role: str(log_dir / name) for role, name in LOG_FILES.items()
            if (log_dir / name).is_file()}


def settings_near(log_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resolved settings, provenance) from the run_spec.json and versions.json in the
    log folder or up to three folders above it (a scenario folder of ours); empty when
    there are none (logs of another tool)."""
    for folder in (log_dir, *list(log_dir.parents)[:3]):
        spec_file = folder / "run_spec.json"
        if spec_file.is_file():
            return _read_settings(spec_file, folder / "versions.json")
    return {}, {}


def _read_settings(spec_file: Path, versions_file: Path) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    from mlperf_pilot.results.provenance import read_run_spec, read_versions

    try:
        saved = read_run_spec(spec_file)
    except StoreError:
        return {}, {}
    resolved = saved.resolved.model_dump(mode="json")
    versions = resolved.pop("versions", None)
    if versions is None and versions_file.is_file():
        try:
            versions = read_versions(versions_file).model_dump(mode="json")
        except StoreError:
            versions = None
    packages = (versions or {}).get("packages") or {}
    provenance = {
        "command": resolved.get("command"),
        "tool_version": packages.get("mlperf-pilot"),
        "versions": versions or {},
        "resolved": resolved,
    }
    return dict(saved.spec), provenance


def this_host() -> dict[str, Any]:
    """The machine a test ran on, as provenance records it."""
    import platform

    return {"name": socket.gethostname(), "machine": platform.machine(),
            "platform": platform.platform()}


__all__ = [
    "BUSY_TIMEOUT_S",
    "KINDS",
    "LOG_FILES",
    "STORE_ENV",
    "STORE_FILE",
    "ResultsStore",
    "StoredTest",
    "default_test_id",
    "log_paths",
    "open_store",
    "settings_near",
    "store_path",
    "this_host",
]

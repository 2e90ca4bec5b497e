"""The content-addressed asset cache: models, datasets, preprocessed data.

Layout under the cache root (``--cache-dir``, ``MLPERF_PILOT_CACHE``, or the platform's
user cache dir)::

    entries/<kind>/<name>-<key16>/manifest.json   one finished entry (atomic)
    entries/<kind>/<name>-<key16>/...             its files
    downloads/<key16>/<file>.part                 partial downloads, kept for resume
    locks/<kind>-<key16>.lock                     one file lock per entry
    tmp/                                          entries being built

An entry's key is the sha256 of the canonical JSON of its *recipe* (URL + checksum, or
builder + inputs, or dataset fingerprint + preprocessing spec), so a changed recipe is
a different entry, never a stale hit. Entries are built in ``tmp/`` and renamed into
place under the entry's lock, so two runs that need the same asset at once build it
once. ``add_external`` registers a file or folder the user already has (no copy).

Every entry records the size and sha256 of its files when it is made (a registered
model: of the user's file). Each lookup checks them again: sizes for every entry, the
sha256 too for models, so a model truncated or altered after caching is rebuilt (or,
for a registered file, refused with the ``cache add``/``cache clear`` to run) instead
of being used.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mlperf_pilot.errors import AssetError, ChecksumError, ConfigError
from mlperf_pilot.storage import file_sha256

MANIFEST = "manifest.json"
KINDS = ("model", "dataset", "preprocessed", "download", "layer")  # layer: serverless zips
LOCK_TIMEOUT_S = 6 * 3600  # a build of a whole dataset can take long
# kinds whose files are hashed on every use (a model is read whole anyway); the files
# of every other entry are checked by size
HASHED_KINDS = ("model",)
log = logging.getLogger(__name__)


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """The sha256 of a recipe's canonical JSON: the identity of a cache entry."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "entry"


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class CacheEntry:
    """One cache entry as read from its manifest."""

    name: str
    kind: str
    key: str
    path: Path  # the entry folder
    main: str | None  # the main file or folder, relative to ``path``
    external: str | None  # the user's own path, for entries made by ``add``
    created: str
    size_bytes: int
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    # relative path -> (size, sha256) of every file when the entry was made; None for
    # entries filled incrementally and for manifests written before this was recorded
    files: dict[str, tuple[int, str]] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """The name with the start of the key (``imagenet-3x224x224@710a950c``): unique,
        and always accepted by ``cache path``/``cache clear``."""
        return f"{self.name}@{self.key[:8]}"

    @property
    def target(self) -> Path:
        """What users of the entry open: the external path, the main file, or the folder."""
        if self.external:
            return Path(self.external)
        return self.path / self.main if self.main else self.path

    def is_intact(self) -> bool:
        return self.target.exists()

    def damage(self, *, hashes: bool) -> str | None:
        """What differs from the recorded files (sizes always, content if ``hashes``),
        or None when the entry is as it was made."""
        if not self.is_intact():
            return f"{self.target} is missing"
        if self.files is None:
            return None
        base = self.target if self.external else self.path
        for relative, (size, digest) in sorted(self.files.items()):
            path = base / relative if relative else base
            try:
                actual = path.stat().st_size
            except OSError:
                return f"{path} is missing"
            if actual != size:
                return f"{path} has {actual} bytes, {size} when it was cached"
            if hashes and file_sha256(path) != digest:
                return f"{path} was altered after it was cached (sha256 differs)"
        return None


@dataclass
class BuildResult:
    """What a build function returns: the main file (relative) and facts to record."""

    main: str | None
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


class AssetCache:
    """A cache rooted at one folder; safe to share between processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    # ------------------------------------------------------------------ paths and locks

    def entry_dir(self, kind: str, name: str, key: str) -> Path:
        self._check_kind(kind)
        return self.root / "entries" / kind / f"{_slug(name)}-{key[:16]}"

    def download_dir(self, key: str) -> Path:
        return self.root / "downloads" / key[:16]

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_dir / f"{kind}-{key[:16]}.lock"), timeout=LOCK_TIMEOUT_S)
        try:
            with lock:
                yield
        except Timeout as exc:
            raise AssetError(
                f"timed out waiting for another process building {kind} {key[:16]}",
                hint=f"if no other mlperf-pilot is running, delete {lock.lock_file}",
            ) from exc

    # ------------------------------------------------------------------------- lookups

    def lookup(self, kind: str, name: str, key: str) -> CacheEntry | None:
        """The entry, if it exists and its files are as they were made (sizes, and the
        sha256 of model files); a damaged entry counts as absent and is rebuilt."""
        entry = self._read_manifest(self.entry_dir(kind, name, key))
        if entry is not None and entry.damage(hashes=kind in HASHED_KINDS) is None:
            return entry
        if entry is not None:
            log.warning("cache entry %s is damaged (%s); rebuilding it", entry.path,
                        entry.damage(hashes=kind in HASHED_KINDS))
        return None

    def entries(self, *, kind: str | None = None, name: str | None = None) -> list[CacheEntry]:
        base = self.root / "entries"
        if not base.is_dir():
            return []
        found = []
        for kind_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if kind is not None and kind_dir.name != kind:
                continue
            for entry_dir in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
                entry = self._read_manifest(entry_dir)
                if entry is not None and (name is None or entry.name == name):
                    found.append(entry)
        return found

    def unique_names(self, entries: list[CacheEntry] | None = None) -> dict[Path, str]:
        """Each entry's name in listings: its name where no other entry has it, else its
        :attr:`~CacheEntry.full_name`, so no two rows of ``cache list`` read the same."""
        entries = self.entries() if entries is None else entries
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.name] = counts.get(entry.name, 0) + 1
        return {e.path: e.name if counts[e.name] == 1 else e.full_name for e in entries}

    def match(self, name: str) -> list[CacheEntry]:
        """The entries ``name`` means: those named so, or the one whose full name
        (``name@key``) or folder it is."""
        every = self.entries()
        exact = [e for e in every if e.name == name]
        if exact:
            return exact
        return [e for e in every if name in (e.full_name, e.path.name)
                or (name.startswith(f"{e.name}@") and e.key.startswith(name.split("@")[-1]))]

    def find_external(self, kind: str, name: str) -> CacheEntry | None:
        """The registration of ``name`` (``cache add``). A registered file that changed
        since (size, or sha256 for models) is a ChecksumError: it is the user's file, so
        it cannot be rebuilt, and a silent use would measure something else."""
        for entry in self.entries(kind=kind, name=name):
            if entry.external and entry.is_intact():
                problem = entry.damage(hashes=kind in HASHED_KINDS)
                if problem is not None:
                    shown = self.unique_names().get(entry.path, entry.full_name)
                    raise ChecksumError(
                        f"registered {kind} {name} changed since `cache add`: {problem}",
                        hint=f"register it again with `mlperf-pilot cache add {name} "
                        f"{entry.external}`, or drop it with `mlperf-pilot cache clear "
                        f"{shown}`",
                    )
                return entry
        return None

    # ------------------------------------------------------------------------ building

    def get_or_build(
        self,
        kind: str,
        name: str,
        recipe: Mapping[str, Any],
        build: Callable[[Path], BuildResult],
    ) -> tuple[CacheEntry, bool]:
        """Return the entry for ``recipe``, building it under its lock if absent.

        ``build`` receives an empty folder and writes the entry's files into it. Returns
        ``(entry, built)`` where ``built`` says whether this call built it.
        """
        key = recipe_key(recipe)
        entry = self.lookup(kind, name, key)
        if entry is not None:
            return entry, False
        with self.lock(kind, key):
            entry = self.lookup(kind, name, key)  # someone else may have built it
            if entry is not None:
                return entry, False
            tmp = self._new_tmp_dir(kind, key)
            try:
                result = build(tmp)
                self._write_manifest(tmp, name, kind, key, recipe, result, external=None,
                                     files=_record_files(tmp))
                final = self.entry_dir(kind, name, key)
                if final.exists():  # a broken earlier entry: replace it
                    shutil.rmtree(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        entry = self.lookup(kind, name, key)
        if entry is None:  # pragma: no cover - only if the filesystem lies
            raise AssetError(f"cache entry {name} vanished right after it was built")
        return entry, True

    @contextmanager
    def mutable_entry(
        self, kind: str, name: str, recipe: Mapping[str, Any], *, source: str,
        meta: Mapping[str, Any] | None = None,
    ) -> Iterator[Path]:
        """An entry filled incrementally (preprocessed data): created on first use,
        held under its lock while the caller writes into it."""
        key = recipe_key(recipe)
        with self.lock(kind, key):
            folder = self.entry_dir(kind, name, key)
            if self._read_manifest(folder) is None:
                folder.mkdir(parents=True, exist_ok=True)
                self._write_manifest(
                    folder, name, kind, key, recipe,
                    BuildResult(main=None, source=source, meta=dict(meta or {})),
                    external=None,
                )
            yield folder

    def refresh_size(self, entry_dir: Path) -> None:
        """Record the current size of an incrementally filled entry."""
        path = entry_dir / MANIFEST
        data = json.loads(path.read_text(encoding="utf-8"))
        data["size_bytes"] = _tree_size(entry_dir)
        _write_json_atomic(path, data)

    def add_external(
        self, kind: str, name: str, path: Path, *, meta: Mapping[str, Any] | None = None,
    ) -> CacheEntry:
        """Register a file or folder the user already has; nothing is copied. An earlier
        registration of ``name`` (another path) is replaced: a name means one file."""
        target = Path(path).expanduser().resolve()
        if not target.exists():
            raise ConfigError(
                f"{target} does not exist", hint="give the path of an existing file or folder"
            )
        recipe = {"external": str(target), "name": name}
        key = recipe_key(recipe)
        for earlier in self.entries(kind=kind, name=name):
            if earlier.external and earlier.key != key:
                self.remove(earlier)
        with self.lock(kind, key):
            folder = self.entry_dir(kind, name, key)
            folder.mkdir(parents=True, exist_ok=True)
            self._write_manifest(
                folder, name, kind, key, recipe,
                BuildResult(main=None, source="added by the user", meta=dict(meta or {})),
                external=str(target),
                files=_record_files(target) if kind in HASHED_KINDS and target.is_file()
                else None,
            )
        entry = self._read_manifest(folder)
        assert entry is not None
        return entry

    # ------------------------------------------------------------------------ removing

    def remove(self, entry: CacheEntry) -> None:
        """Delete an entry (for external ones only the registration, never the data)."""
        with self.lock(entry.kind, entry.key):
            shutil.rmtree(entry.path, ignore_errors=True)

    def clear(self, name: str | None = None) -> list[CacheEntry]:
        """Remove every entry, or those with ``name``; returns what was removed."""
        removed = self.entries(name=name)
        for entry in removed:
            self.remove(entry)
        if name is None:
            for extra in ("downloads", "tmp"):
                shutil.rmtree(self.root / extra, ignore_errors=True)
        return removed

    # ------------------------------------------------------------------------ internals

    def _new_tmp_dir(self, kind: str, key: str) -> Path:
        tmp = self.root / "tmp" / f"{kind}-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        return tmp

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown cache kind {kind!r}; expected one of {KINDS}")

    @staticmethod
    def _write_manifest(
        folder: Path, name: str, kind: str, key: str, recipe: Mapping[str, Any],
        result: BuildResult, external: str | None,
        files: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        data = {
            "name": name,
            "kind": kind,
            "key": key,
            "main": result.main,
            "external": external,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "size_bytes": 0 if external else _tree_size(folder),
            "source": result.source,
            "recipe": dict(recipe),
            "meta": result.meta,
            "files": None if files is None else {k: list(v) for k, v in files.items()},
        }
        _write_json_atomic(folder / MANIFEST, data)

    @staticmethod
    def _read_manifest(folder: Path) -> CacheEntry | None:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            return CacheEntry(
                name=data["name"], kind=data["kind"], key=data["key"], path=folder,
                main=data.get("main"), external=data.get("external"),
                created=data.get("created", ""), size_bytes=int(data.get("size_bytes", 0)),
                source=data.get("source", ""), meta=data.get("meta") or {},
                files=_parse_files(data.get("files")),
                recipe=data.get("recipe") if isinstance(data.get("recipe"), dict) else {},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def differences(entries: list[CacheEntry]) -> dict[Path, str]:
    """What tells entries of one name apart: per entry, the recipe settings (dotted
    keys) whose values differ between them, e.g. ``dataset.root=/data/a``."""
    flat = {e.path: _flatten(e.recipe) for e in entries}
    keys = sorted({k for f in flat.values() for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
    told: dict[Path, str] = {}
    for entry in entries:
        parts = [f"{k}={_short(flat[entry.path].get(k))}" for k in differing[:4]]
        if len(differing) > 4:
            parts.append(f"+{len(differing) - 4} more settings")
        told[entry.path] = ", ".join(parts) or f"created {entry.created}"
    return told


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, list):
        text = ",".join(Path(str(v)).name if "/" in str(v) else str(v) for v in value)
    else:
        text = "(none)" if value is None else str(value)
    if re.fullmatch(r"[0-9a-f]{32,}", text):  # a checksum: its start tells them apart
        text = text[:12]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _record_files(root: Path) -> dict[str, tuple[int, str]]:
    """(size, sha256) of a file, or of every file under a folder but the manifest."""
    if root.is_file():
        return {"": (root.stat().st_size, file_sha256(root))}
    return {p.relative_to(root).as_posix(): (p.stat().st_size, file_sha256(p))
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _parse_files(raw: Any) -> dict[str, tuple[int, str]] | None:
    if not isinstance(raw, dict):
        return None
    return {str(k): (int(v[0]), str(v[1])) for k, v in raw.items()}


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)

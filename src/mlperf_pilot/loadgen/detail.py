"""mlperf_log_detail.txt: one ``:::MLLOG {json}`` entry per line (``key``, ``value``,
``time_ms``, ``event_type``, ``metadata`` with ``is_error``/``is_warning``), read into a
:class:`DetailLog`. Part of the one log parser (:mod:`mlperf_pilot.loadgen.logs`, which
re-exports these names and derives the results from them).

LoadGen writes string values without JSON escaping and doubles with C++ ``<<`` (so a
non-finite number comes out as ``inf``/``nan``); lines that are not valid JSON for
those two reasons alone are still read. Anything else that is not valid JSON means the
file was cut short or damaged, and is an error naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from mlperf_pilot.errors import LoadGenError

DETAIL_FILE = "mlperf_log_detail.txt"
_PREFIX = ":::MLLOG "


# ------------------------------------------------------------------------------- detail


class DetailEntry(NamedTuple):
    """One ``:::MLLOG`` line of mlperf_log_detail.txt."""

    key: str
    value: Any
    time_ms: float | None
    event_type: str | None
    metadata: dict[str, Any]

    @property
    def is_error(self) -> bool:
        return bool(self.metadata.get("is_error"))

    @property
    def is_warning(self) -> bool:
        return bool(self.metadata.get("is_warning"))


class DetailLog:
    """The entries of one mlperf_log_detail.txt, in file order."""

    def __init__(self, entries: list[DetailEntry], path: Path | None = None) -> None:
        self.entries = entries
        self.path = path
        self._last: dict[str, Any] = {entry.key: entry.value for entry in entries}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of the last entry with ``key`` (LoadGen repeats some keys)."""
        return self._last.get(key, default)

    def has(self, key: str) -> bool:
        return key in self._last

    def values(self, key: str) -> list[Any]:
        """The values of every entry with ``key``, in file order."""
        return [entry.value for entry in self.entries if entry.key == key]

    def with_prefix(self, prefix: str) -> dict[str, Any]:
        """``{key without prefix: last value}`` for every key starting with ``prefix``."""
        size = len(prefix)
        return {key[size:]: value for key, value in self._last.items() if key.startswith(prefix)}

    @property
    def errors(self) -> list[DetailEntry]:
        return [entry for entry in self.entries if entry.is_error]

    @property
    def warnings(self) -> list[DetailEntry]:
        return [entry for entry in self.entries if entry.is_warning]


def parse_detail(path: Path) -> DetailLog:
    """Read mlperf_log_detail.txt; LoadGenError if it is missing or not LoadGen's format."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            log = DetailLog(list(_entries(stream, str(path))), path)
    except FileNotFoundError:
        raise LoadGenError(
            f"LoadGen detail log {path} does not exist",
            hint=_missing_detail_hint(path.parent),
        ) from None
    except OSError as exc:
        raise LoadGenError(
            f"LoadGen detail log {path} cannot be read: {exc.strerror or exc}",
            hint="check the file's permissions and that the disk is readable",
        ) from exc
    return log


def parse_detail_text(text: str, source: str = DETAIL_FILE) -> DetailLog:
    """Parse the text of a detail log; ``source`` names it in error messages."""
    return DetailLog(list(_entries(text.splitlines(), source)))


def _entries(lines: Iterable[str], source: str) -> Iterator[DetailEntry]:
    pending: tuple[int, str] | None = None  # a bad line, reported once we know if it is last
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_PREFIX):
            continue
        if pending is not None:
            raise _bad_line(source, *pending, last=False)
        raw = _decode(line[len(_PREFIX):])
        if raw is None:
            pending = (number, line)
            continue
        yield DetailEntry(
            key=raw["key"],
            value=raw.get("value"),
            time_ms=raw.get("time_ms"),
            event_type=raw.get("event_type"),
            metadata=raw.get("metadata") or {},
        )
    if pending is not None:
        raise _bad_line(source, *pending, last=True)


def _decode(body: str) -> dict[str, Any] | None:
    """The JSON object of one entry, or None when the text is not a LoadGen entry."""
    try:
        raw = json.loads(body)
    except ValueError:
        raw = _decode_loadgen_quirks(body)
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        return None
    if not isinstance(raw.get("metadata", {}), dict):
        return None
    return raw


_NON_FINITE = re.compile(r"^(-?)(inf|nan)$", re.IGNORECASE)
_VALUE_START = ', "value": '
_TIME_START = ', "time_ms": '


def _decode_loadgen_quirks(body: str) -> dict[str, Any] | None:
    """Read an entry whose value LoadGen wrote unescaped (``"a"b"``) or as ``inf``/``nan``.

    The line layout is fixed, ``{"key": K, "value": V, "time_ms": T, ...}``, so V is the
    text between the first ``, "value": `` and the last ``, "time_ms": ``.
    """
    head, found, tail = body.partition(_VALUE_START)
    cut = tail.rfind(_TIME_START)
    if not found or cut < 0:
        return None
    try:
        raw = json.loads(head + tail[cut:])
    except ValueError:
        return None
    ok, value = _quirky_value(tail[:cut].strip())
    if not ok or not isinstance(raw, dict):
        return None
    raw["value"] = value
    return raw


def _quirky_value(text: str) -> tuple[bool, Any]:
    match = _NON_FINITE.match(text)
    if match:
        return True, float(f"{match.group(1)}{match.group(2)}")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return True, text[1:-1]
    return False, None


def _bad_line(source: str, number: int, line: str, *, last: bool) -> LoadGenError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    if last:
        hint = (
            "the file ends in the middle of an entry: LoadGen was stopped or the disk "
            "filled up while it wrote; rerun the test"
        )
    else:
        hint = "the file was edited or damaged after LoadGen wrote it; rerun the test"
    return LoadGenError(f"{source}:{number} is not a LoadGen log entry: {shown}", hint=hint)


def _missing_detail_hint(folder: Path) -> str:
    others = sorted(folder.glob(f"*{DETAIL_FILE.removesuffix('.txt')}*")) if folder.is_dir() else []
    if others:
        names = ", ".join(p.name for p in others[:3])
        return (
            f"the folder has {names}: LoadGen was given a log prefix or suffix; "
            "run it with the default names"
        )
    return "LoadGen writes this file when a test starts: check the folder, or rerun the test"

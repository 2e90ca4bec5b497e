"""Read LoadGen's mlperf_log_accuracy.json (a JSON array of seq_id/qsl_idx/data)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.errors import AccuracyError


@dataclass(frozen=True)
class AccuracyEntry:
    seq_id: int
    qsl_idx: int
    data: bytes


def read_accuracy_log(path: Path) -> list[AccuracyEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccuracyError(
            f"accuracy log {path} does not exist", hint="run the benchmark in accuracy mode first"
        ) from None
    except (OSError, ValueError) as exc:
        raise AccuracyError(
            f"accuracy log {path} is not valid JSON ({exc})",
            hint="a truncated log (as in a submission) cannot be scored; use the original",
        ) from exc
    if not isinstance(raw, list):
        raise AccuracyError(f"accuracy log {path} is not a JSON array")
    entries = []
    for number, item in enumerate(raw):
        try:
            entries.append(AccuracyEntry(
                seq_id=int(item["seq_id"]), qsl_idx=int(item["qsl_idx"]),
                data=bytes.fromhex(item["data"]),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise AccuracyError(
                f"accuracy log {path}: entry {number} is malformed ({exc})"
            ) from exc
    return entries


def first_per_sample(entries: list[AccuracyEntry]) -> dict[int, AccuracyEntry]:
    """The first entry of each qsl_idx (LoadGen may log a sample more than once)."""
    seen: dict[int, AccuracyEntry] = {}
    for entry in entries:
        seen.setdefault(entry.qsl_idx, entry)
    return seen

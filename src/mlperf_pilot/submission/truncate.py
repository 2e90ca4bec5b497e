"""Accuracy-log truncation, as the official ``truncate_accuracy_log.py`` does it.

For every ``accuracy/mlperf_log_accuracy.json`` of a result (and of TEST01): append
``hash=<sha256 of the original>`` to ``accuracy.txt`` (after a blank line), copy the
original to the backup folder, and cut the log to its first 4096 and last 4096
characters joined by ``"\\n\\n...\\n\\n"``. A log that already has a hash line and is
under 10 KiB is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlperf_pilot.storage import file_sha256

MAX_TRUNCATED_BYTES = 10 * 1024
VIEWABLE = 4096
_HASH = re.compile(r"^hash=([\w\d]+)$")


@dataclass(frozen=True)
class Truncated:
    log: Path
    sha256: str
    original_bytes: int
    backup: Path | None


def existing_hash(accuracy_txt: Path) -> str | None:
    if not accuracy_txt.is_file():
        return None
    for line in accuracy_txt.read_text(encoding="utf-8").splitlines():
        match = _HASH.match(line)
        if match:
            return match.group(1)
    return None


def truncate_text_file(path: Path) -> None:
    """First and last 4096 characters with ``...`` between (no change when shorter)."""
    size = path.stat().st_size
    if size < VIEWABLE:
        return
    with path.open("r", encoding="utf-8", newline="") as handle:
        start = handle.read(VIEWABLE)
        handle.seek(size - VIEWABLE)
        end = handle.read(VIEWABLE)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(start)
        handle.write("\n\n...\n\n")
        handle.write(end)


def truncate_accuracy_dir(accuracy_dir: Path, backup_dir: Path | None) -> Truncated | None:
    """Hash and truncate one accuracy folder; None when it was done already."""
    log = accuracy_dir / "mlperf_log_accuracy.json"
    txt = accuracy_dir / "accuracy.txt"
    if not log.is_file():
        return None
    size = log.stat().st_size
    if existing_hash(txt) and size < MAX_TRUNCATED_BYTES:
        return None
    backup = None
    if backup_dir is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / log.name
        shutil.copyfile(log, backup)
    digest = file_sha256(log)
    with txt.open("a", encoding="utf-8") as handle:
        handle.write(f"\nhash={digest}\n")
    truncate_text_file(log)
    return Truncated(log=log, sha256=digest, original_bytes=size, backup=backup)


def truncate_tree(scenario_dirs: list[Path], root: Path, backup_root: Path | None
                  ) -> list[Truncated]:
    """Truncate the accuracy logs of result folders (and their TEST01) under ``root``;
    originals are copied to the same relative place under ``backup_root``."""
    done = []
    for scenario in scenario_dirs:
        for folder in (scenario / "accuracy", scenario / "TEST01" / "accuracy"):
            backup = (backup_root / folder.relative_to(root)) if backup_root else None
            result = truncate_accuracy_dir(folder, backup)
            if result is not None:
                done.append(result)
    return done

"""Pack a checked submission tree into the .tar.gz to upload, with its sha256."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path


def pack(directory: Path, out: Path | None = None) -> Path:
    """``<out>`` (default ``<directory>.tar.gz``) holding the division folders, plus a
    ``.sha256`` file next to it."""
    directory = Path(directory).resolve()
    archive = Path(out) if out else directory.with_name(directory.name + ".tar.gz")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(directory.iterdir()):
            if child.is_dir() and child.name in ("closed", "open", "network"):
                tar.add(child, arcname=child.name)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n",
                                                           encoding="utf-8")
    return archive

"""Which preprocessed samples are still true to their images.

A preprocessed-data entry is keyed by the dataset folder, its list file and the
preprocessing recipe; that alone would reuse an old tensor after one image's content
changed. So the entry also keeps ``sources.json``: for every sample, the image it was
made from (relative path, size, mtime in ns, sha256) and the size of its ``.npy``.

On every run, each sample is checked cheaply (one ``stat`` of the image, one of the
``.npy`` and a read of the ``.npy``'s header, which all samples share):

- the image's size and mtime are unchanged, the ``.npy`` has its recorded size and the
  expected header: the sample is reused;
- the image's mtime changed but its size did not: it is hashed, and if the content is
  the same the record is refreshed (``touch``, a copy that kept the bytes), else the
  sample is made again;
- anything else (a changed image, a truncated, emptied, rewritten or missing ``.npy``,
  no record at all, e.g. a sample written by a run that was interrupted before it
  saved the index): the sample is made again.

A file replaced by one of the same size with its old mtime restored (``cp -p`` over
it, or ``touch -r``) is not noticed; ``mlperf-pilot cache clear NAME`` starts over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.storage import file_sha256

INDEX = "sources.json"
_VERSION = 1


def sample_name(index: int) -> str:
    return f"{index:07d}.npy"


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The exact header ``np.save`` writes for one sample (format 1.0)."""
    import io

    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(np.empty(shape, dtype=dtype))
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


@dataclass(frozen=True)
class SourceRecord:
    """What one sample was made from, and what it looked like when written."""

    file: str  # the image, relative to the dataset root
    size: int
    mtime_ns: int
    sha256: str
    npy_size: int

    def to_json(self) -> list[Any]:
        return [self.file, self.size, self.mtime_ns, self.sha256, self.npy_size]

    @classmethod
    def from_json(cls, raw: Any) -> SourceRecord | None:
        try:
            file, size, mtime_ns, sha256, npy_size = raw
            return cls(str(file), int(size), int(mtime_ns), str(sha256), int(npy_size))
        except (TypeError, ValueError):
            return None


def record_for(image: Path, relative: str, sample: Path, sha256: str) -> SourceRecord:
    """A record of ``image`` as hashed (``sha256``), after ``sample`` was written."""
    stat = image.stat()
    return SourceRecord(relative, stat.st_size, stat.st_mtime_ns, sha256,
                        sample.stat().st_size)


class SampleIndex:
    """``sources.json`` of one preprocessed-data entry (used under the entry's lock)."""

    def __init__(self, folder: Path, header: bytes) -> None:
        self.folder = folder
        self.header = header
        self.records: dict[int, SourceRecord] = {}
        self.changed = False
        try:
            raw = json.loads((folder / INDEX).read_text(encoding="utf-8"))
            if raw.get("version") == _VERSION:
                for key, value in raw.get("samples", {}).items():
                    record = SourceRecord.from_json(value)
                    if record is not None:
                        self.records[int(key)] = record
        except (OSError, ValueError, AttributeError):
            self.records = {}  # no index (or an unreadable one): every sample is remade

    def stale(self, root: Path, files: tuple[str, ...]) -> list[int]:
        """The QSL indices whose sample must be made (again)."""
        return [i for i, rel in enumerate(files) if not self._fresh(i, root / rel, rel)]

    def _fresh(self, index: int, image: Path, relative: str) -> bool:
        record = self.records.get(index)
        if record is None or record.file != relative:
            return False
        sample = self.folder / sample_name(index)
        try:
            stat = image.stat()
            if sample.stat().st_size != record.npy_size or not self._header_ok(sample):
                return False
        except OSError:
            return False
        if stat.st_size != record.size:
            return False
        if stat.st_mtime_ns != record.mtime_ns:
            try:
                if file_sha256(image) != record.sha256:
                    return False
            except OSError:
                return False
            self.put(index, SourceRecord(relative, stat.st_size, stat.st_mtime_ns,
                                         record.sha256, record.npy_size))
        return True

    def _header_ok(self, sample: Path) -> bool:
        with sample.open("rb") as handle:
            return handle.read(len(self.header)) == self.header

    def put(self, index: int, record: SourceRecord) -> None:
        self.records[index] = record
        self.changed = True

    def forget(self, indices: list[int]) -> None:
        for index in indices:
            if self.records.pop(index, None) is not None:
                self.changed = True

    def save(self) -> None:
        """Write the index atomically (only when something changed)."""
        if not self.changed:
            return
        path = self.folder / INDEX
        tmp = path.with_name(f".{INDEX}.{os.getpid()}.tmp")
        data = {"version": _VERSION,
                "samples": {str(k): v.to_json() for k, v in sorted(self.records.items())}}
        try:
            tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.changed = False

"""Preprocessed samples: made once, in parallel threads, and cached as one .npy per sample.

The cache entry is keyed by the dataset's fingerprint (folder + list-file hash) and the
preprocessing spec with the library used, so a different recipe never reuses stale
data; within an entry, every sample is checked against the image it was made from on
every run (``sample_index``: size, mtime, content hash when the mtime moved, and the
``.npy``'s size and header), so a changed image or a damaged sample is made again.
Samples are written atomically (temp file + rename), so an interrupted run leaves only
whole files, and a later run with a larger ``--count`` only preprocesses
what is missing. A missing or unreadable image fails the whole step with a
DatasetError naming the file (never a silent skip).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mlperf_pilot.assets.cache import AssetCache
from mlperf_pilot.catalog.cards import PreprocessSpec
from mlperf_pilot.datasets.imagenet import ImageList
from mlperf_pilot.datasets.preprocess import preprocess_image, resolve_library, spec_fingerprint
from mlperf_pilot.datasets.sample_index import (
    SampleIndex,
    SourceRecord,
    npy_header,
    record_for,
    sample_name,
)
from mlperf_pilot.errors import AssetError, DatasetError
from mlperf_pilot.progress import NULL_PROGRESS, Progress
from mlperf_pilot.storage import as_disk_full, disk_full_error, file_sha256, is_disk_full

# Below this many missing samples, preprocessing runs in-process (no pool start-up).
_IN_PROCESS_LIMIT = 32
_CHUNK = 16


class PreparedDataset(Protocol):
    """What the QSL needs: a fixed sample shape and random access by QSL index."""

    @property
    def count(self) -> int: ...

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def labels(self) -> np.ndarray: ...

    def read(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class NpyDirDataset:
    """Samples stored as ``<folder>/<index:07d>.npy``."""

    folder: Path
    count: int
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    labels: np.ndarray
    library: str
    built_now: int  # how many samples this run preprocessed (0 = all from cache)
    annotations: Path | None = None  # detection: the annotation json (accuracy)
    image_hw: np.ndarray | None = None  # detection: original height, width per sample

    def sample_path(self, index: int) -> Path:
        return self.folder / f"{index:07d}.npy"

    def read(self, index: int) -> np.ndarray:
        path = self.sample_path(index)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise self._damaged(path, str(exc)) from exc
        if tuple(array.shape) != tuple(self.sample_shape) or array.dtype != self.dtype:
            raise self._damaged(path, f"it holds {array.dtype}{list(array.shape)}, not "
                                f"{self.dtype}{list(self.sample_shape)}")
        return array

    def _damaged(self, path: Path, why: str) -> DatasetError:
        """A sample changed after this run checked it: name the entry to clear."""
        try:
            name = json.loads((self.folder / "manifest.json").read_text("utf-8"))["name"]
        except (OSError, ValueError, KeyError, TypeError):
            name = self.folder.name
        return DatasetError(
            f"preprocessed sample {path} cannot be read: {why}",
            hint=f"run `mlperf-pilot cache clear {name}` (or just run again: damaged "
            "samples are remade before a run)",
        )


@dataclass(frozen=True)
class ArrayDataset:
    """Samples held in memory (synthetic data for benchmarks and tests)."""

    samples: np.ndarray  # (count, *sample_shape)
    labels: np.ndarray

    @property
    def count(self) -> int:
        return int(self.samples.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.samples.dtype

    def read(self, index: int) -> np.ndarray:
        return self.samples[index]


def _write_sample(folder: Path, index: int, array: np.ndarray) -> None:
    final = folder / f"{index:07d}.npy"
    tmp = folder / f".{index:07d}.{os.getpid()}.{threading.get_ident()}.tmp.npy"
    try:
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, final)
    except OSError as exc:  # e.g. a full disk: no half-written sample stays behind
        full = as_disk_full(exc, final)  # before the unlink frees what was written
        tmp.unlink(missing_ok=True)
        if full is exc:
            raise
        raise full from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _preprocess_chunk(
    paths: Sequence[str], indices: Sequence[int], folder: Path, spec: PreprocessSpec,
    library: str, made: list[tuple[int, SourceRecord]] | None = None,
) -> tuple[int, str | DatasetError | None]:
    """Preprocess a chunk; returns (done, error or None). Each sample written is
    appended to ``made`` with the record of the image it was made from."""
    done = 0
    for path, index in zip(paths, indices, strict=True):
        try:
            image = Path(path)
            content = file_sha256(image)  # before decoding: a later change is noticed
            _write_sample(folder, index, preprocess_image(image, spec, library))
            if made is not None:
                made.append((index, record_for(image, path, folder / sample_name(index),
                                               content)))
        except DatasetError as exc:  # with its own fix (a truncated JPEG, ...)
            return done, exc
        except OSError as exc:
            if is_disk_full(exc):  # the cache's disk, not the image: said by the caller
                raise
            return done, f"image {path} cannot be preprocessed: {type(exc).__name__}: {exc}"
        except Exception as exc:  # an unexpected failure still names the file
            return done, f"image {path} cannot be preprocessed: {type(exc).__name__}: {exc}"
        done += 1
    return done, None


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare_images(
    images: ImageList,
    spec: PreprocessSpec,
    cache: AssetCache,
    *,
    workers: int = 0,
    progress: Progress = NULL_PROGRESS,
) -> NpyDirDataset:
    """Preprocess every image of ``images`` not yet in the cache; return the dataset."""
    library = resolve_library(spec)
    recipe = {"dataset": images.fingerprint(), "preprocess": spec_fingerprint(spec, library)}
    name = f"{images.name}-{spec.sample_shape[0]}x{spec.sample_shape[1]}x{spec.sample_shape[2]}"
    with cache.mutable_entry(
        "preprocessed", name, recipe, source=f"preprocessed from {images.root}",
        meta={"library": library, "layout": spec.layout, "dtype": spec.dtype},
    ) as folder:
        index = SampleIndex(folder, npy_header(spec.sample_shape, spec.dtype))
        missing = index.stale(images.root, images.files)
        made: list[tuple[int, SourceRecord]] = []
        try:
            if missing:
                index.forget(missing)  # a sample being remade is not trusted meanwhile
                _run_preprocessing(images, missing, folder, spec, library, workers,
                                   progress, made)
                cache.refresh_size(folder)
        finally:  # what was made is kept even when an image fails or the disk fills
            for number, record in made:
                index.put(number, _relative(record, images))
            index.save()
    return NpyDirDataset(
        folder=folder,
        count=len(images),
        sample_shape=spec.sample_shape,
        dtype=np.dtype(spec.dtype),
        labels=images.labels,
        library=library,
        built_now=len(missing),
        annotations=images.annotations,
        image_hw=images.image_hw,
    )


def _relative(record: SourceRecord, images: ImageList) -> SourceRecord:
    """The record with its image path relative to the dataset root, as listed."""
    absolute = Path(record.file)
    relative = os.path.relpath(absolute, images.root) if absolute.is_absolute() else record.file
    return SourceRecord(Path(relative).as_posix(), record.size, record.mtime_ns,
                        record.sha256, record.npy_size)


def _run_preprocessing(
    images: ImageList, missing: list[int], folder: Path, spec: PreprocessSpec, library: str,
    workers: int, progress: Progress, made: list[tuple[int, SourceRecord]] | None = None,
) -> None:
    """Threads, not processes: Pillow and OpenCV release the GIL while decoding and
    resizing (measured on 2 cores: 2 threads give 2.3x Pillow, 2.9x OpenCV), and threads
    need no picklable work and no ``if __name__ == "__main__"`` guard in the caller's
    script (a forkserver/spawn pool re-imports it)."""
    chunks = [missing[i : i + _CHUNK] for i in range(0, len(missing), _CHUNK)]
    workers = workers or usable_cores()

    def work(chunk: list[int]) -> tuple[int, str | DatasetError | None]:
        return _preprocess_chunk([str(images.path(i)) for i in chunk], chunk, folder, spec,
                                 library, made)

    with progress.task("preprocessing", total=len(missing), unit="images") as task:
        if len(missing) <= _IN_PROCESS_LIMIT or workers == 1:
            results = map(work, chunks)
            pool = None
        else:
            pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preprocess")
            results = pool.map(work, chunks)
        try:
            for done, error in results:
                task.advance(done)
                if isinstance(error, DatasetError):
                    raise error
                if error:
                    raise DatasetError(error, hint="fix or remove that image and retry")
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            kept = sum(1 for p in folder.glob("*.npy") if not p.name.startswith("."))
            raise disk_full_error(exc, error=AssetError, where=str(folder), kept=(
                f"{kept} of {len(images)} preprocessed sample(s), whole, reused by the next "
                "run")) from exc
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

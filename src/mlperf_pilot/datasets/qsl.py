"""The query sample library's memory: samples LoadGen asked to load, in one array.

LoadGen calls ``load`` with the QSL indices of a loadable set before timing starts and
``unload`` after; in between the SUT asks for batches with ``gather``. Loaded samples
live in one contiguous array, with a slot table from QSL index to row, so a batch is
one ``np.take`` into a reused buffer and a single sample is a view (no copy).

LoadGen's callbacks must never raise (an exception inside a LoadGen thread cannot be
recovered), so ``load`` records a failure in ``error`` and leaves the samples absent;
``gather`` on an absent sample then raises in the SUT, which reports it as a failed
inference and the run as INVALID with this error as the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from mlperf_pilot.datasets.prepared import PreparedDataset
from mlperf_pilot.errors import DatasetError


class SampleStore:
    """Loads, holds and gathers preprocessed samples by QSL index."""

    def __init__(self, dataset: PreparedDataset) -> None:
        self.dataset = dataset
        self._slot = np.full(dataset.count, -1, dtype=np.int64)
        self._data = np.empty((0, *dataset.sample_shape), dtype=dataset.dtype)
        self._lock = threading.Lock()
        self.error: str | None = None
        self.loads = 0

    @property
    def count(self) -> int:
        return self.dataset.count

    @property
    def loaded(self) -> int:
        return int(self._data.shape[0])

    def load(self, indices: Sequence[int]) -> None:
        """LoadGen's load_samples_to_ram callback."""
        try:
            unique = np.unique(np.asarray(indices, dtype=np.int64))
            data = np.empty((unique.size, *self.dataset.sample_shape), dtype=self.dataset.dtype)
            for row, index in enumerate(unique):
                data[row] = self.dataset.read(int(index))
            with self._lock:
                self._slot[:] = -1
                self._slot[unique] = np.arange(unique.size)
                self._data = data
                self.loads += 1
        except Exception as exc:  # never let an exception into LoadGen's thread
            message = (exc.message if isinstance(exc, DatasetError)
                       else f"{type(exc).__name__}: {exc}")
            self.error = f"loading samples failed: {message}"

    def unload(self, indices: Sequence[int]) -> None:
        """LoadGen's unload_samples_from_ram callback."""
        with self._lock:
            self._slot[:] = -1
            self._data = np.empty((0, *self.dataset.sample_shape), dtype=self.dataset.dtype)

    def gather(self, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The batch for ``indices``: a view when they sit in consecutive rows (always for
        one sample), else one take into ``out``."""
        slots = self._slot[indices]
        if slots.size and slots.min() < 0:
            absent = int(indices[int(np.argmin(slots))])
            raise DatasetError(
                f"sample {absent} was not loaded" + (f" ({self.error})" if self.error else "")
            )
        first = int(slots[0]) if slots.size else 0
        if slots.size == 1 or (slots.size and int(slots[-1]) - first == slots.size - 1
                               and bool(np.all(np.diff(slots) == 1))):
            return self._data[first : first + slots.size]
        if out is None:
            return np.take(self._data, slots, axis=0)
        target = out[: slots.size]
        np.take(self._data, slots, axis=0, out=target)
        return target

    def plan_batches(self, indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """Split a large query into batches that ``gather`` can mostly serve as views.

        The SUT may answer an Offline query's samples in any order. Sorted by their row,
        taking each row once per round (a query repeats every loaded sample many times),
        the positions form long runs of consecutive rows; every full run of
        ``batch_size`` becomes a zero-copy batch, the leftovers are packed into full
        batches that are gathered. Returns positions into ``indices``, per batch.
        """
        slots = self._slot[indices]
        by_slot = np.argsort(slots, kind="stable")
        sorted_slots = slots[by_slot]
        starts = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
        counts = np.diff(np.r_[starts, sorted_slots.size])
        rank = np.arange(sorted_slots.size) - np.repeat(starts, counts)
        order = by_slot[np.lexsort((sorted_slots, rank))]
        ordered = slots[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        batches: list[np.ndarray] = []
        leftovers: list[np.ndarray] = []
        for run in np.split(order, breaks):
            full = run.size - run.size % batch_size
            batches.extend(run[i : i + batch_size] for i in range(0, full, batch_size))
            if full < run.size:
                leftovers.append(run[full:])
        if leftovers:
            rest = np.concatenate(leftovers)
            batches.extend(rest[i : i + batch_size] for i in range(0, rest.size, batch_size))
        return batches

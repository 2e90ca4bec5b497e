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
        """The batch for ``indices``; a view for one sample, else one take into ``out``."""
        slots = self._slot[indices]
        if slots.size and slots.min() < 0:
            absent = int(indices[int(np.argmin(slots))])
            raise DatasetError(
                f"sample {absent} was not loaded" + (f" ({self.error})" if self.error else "")
            )
        if slots.size == 1:
            row = int(slots[0])
            return self._data[row : row + 1]
        if out is None:
            return np.take(self._data, slots, axis=0)
        target = out[: slots.size]
        np.take(self._data, slots, axis=0, out=target)
        return target

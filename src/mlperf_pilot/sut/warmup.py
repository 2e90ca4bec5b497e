"""Warm-up, written once: untimed inferences before a LoadGen test (``warm_up``, in the
test process) and the parent's timed probe (``measure_speed``: proves the model and the
decoder work on real data and measures the estimates user.conf starts from)."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import numpy as np

from mlperf_pilot.datasets.prepared import PreparedDataset
from mlperf_pilot.decoders.base import Decoder
from mlperf_pilot.errors import BackendError, MlperfPilotError
from mlperf_pilot.loadgen.settings import Estimates

if TYPE_CHECKING:
    from mlperf_pilot.sut.base import Predictor

WARMUP_BUDGET_S = 3.0


def first_batches(dataset: PreparedDataset, max_batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample 0 as a batch of one, and repeated into a full batch (contiguous)."""
    sample = np.ascontiguousarray(dataset.read(0))[None]
    return sample, np.ascontiguousarray(np.repeat(sample, max_batch_size, axis=0))


def warm_up(predictor: Predictor, dataset: PreparedDataset, max_batch_size: int,
            rounds: int = 2) -> None:
    """Untimed inferences before LoadGen starts, as the reference does: the first calls
    of a fresh session pay for memory arenas and kernel selection."""
    sample, batch = first_batches(dataset, max_batch_size)
    try:
        for _ in range(rounds):
            predictor.predict(sample)
            if max_batch_size > 1:
                predictor.predict(batch)
    except MlperfPilotError:
        raise
    except Exception as exc:
        raise warm_up_failed(exc) from exc


def warm_up_failed(exc: Exception) -> BackendError:
    return BackendError(f"inference failed during warm-up: {type(exc).__name__}: {exc}",
                        hint="the model does not accept this input; check --model-path and "
                        "--model-format")


def measure_speed(
    predictor: Predictor, decoder: Decoder, dataset: PreparedDataset, max_batch_size: int,
    budget_s: float = WARMUP_BUDGET_S, *, check_outputs: bool = True,
) -> Estimates:
    """Warm the backend up and time batch 1 and a full batch the way the SUT runs them
    (a batch of loaded rows is a view, Offline batches need no copy), predict, decode;
    also proves the model and the decoder work on real data before LoadGen starts, and
    that the outputs are what the card's postprocess reads (OutputMismatchError)."""
    _, source = first_batches(dataset, max_batch_size)
    # fewer loaded samples than a batch: no run of consecutive rows fills one, so the
    # SUT gathers (copies) every batch; otherwise batches are views
    copies = dataset.count < max_batch_size
    buffer = np.empty_like(source) if copies else source

    def timed(size: int, budget: float) -> float:
        rows = np.arange(size)
        sample_ids = np.zeros(size, dtype=np.int64)  # every row is sample 0
        times: list[float] = []
        spent = 0.0
        while len(times) < 5 and (len(times) < 2 or spent < budget):
            start = time.perf_counter()
            batch = (np.take(source, rows, axis=0, out=buffer[:size]) if copies and size > 1
                     else source[:size])
            outputs = predictor.predict(batch)
            decoder.decode(outputs, sample_ids)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            spent += elapsed
        return statistics.median(times[1:]) * 1000.0  # the first call pays for warm-up

    try:
        if check_outputs:
            decoder.check_outputs(predictor.predict(source[:1]), 1)
        latency = timed(1, budget_s / 2)
        batch_latency = timed(max_batch_size, budget_s / 2) if max_batch_size > 1 else latency
    except MlperfPilotError:
        raise
    except Exception as exc:
        raise warm_up_failed(exc) from exc
    return Estimates(latency_ms=latency, batch_latency_ms=batch_latency,
                     max_batch_size=max_batch_size)


__all__ = ["WARMUP_BUDGET_S", "first_batches", "measure_speed", "warm_up"]

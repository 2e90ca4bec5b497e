"""The parent's warm-up: load the model once, prove it and the decoder work on real
data, and time it (the estimates user.conf starts from); the tests themselves run in
child processes (launch.run_in_child)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from mlperf_pilot.backends import LoadOptions, create_backend
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.datasets.prepared import NpyDirDataset, PreparedDataset
from mlperf_pilot.decoders import (
    Decoder,
    Geometry,
    OutputMismatchError,
    create_decoder,
    output_fix,
)
from mlperf_pilot.errors import BackendError, MlperfPilotError
from mlperf_pilot.loadgen.settings import Estimates
from mlperf_pilot.plan import RunPlan
from mlperf_pilot.progress import Progress

WARMUP_BUDGET_S = 3.0


def measure_speed(
    backend: Backend, decoder: Decoder, dataset: PreparedDataset, max_batch_size: int,
    budget_s: float = WARMUP_BUDGET_S,
) -> Estimates:
    """Warm the backend up and time batch 1 and a full batch the way the SUT runs them
    (a batch of loaded rows is a view, Offline batches need no copy), predict, decode;
    also proves the model and the decoder work on real data before LoadGen starts, and
    that the outputs are what the card's postprocess reads (OutputMismatchError)."""
    sample = np.ascontiguousarray(dataset.read(0))[None]
    source = np.ascontiguousarray(np.repeat(sample, max_batch_size, axis=0))
    buffer = np.empty_like(source)
    # fewer loaded samples than a batch: no run of consecutive rows fills one, so the
    # SUT gathers (copies) every batch; otherwise batches are views
    copies = dataset.count < max_batch_size

    def timed(size: int, budget: float) -> float:
        rows = np.arange(size)
        sample_ids = np.zeros(size, dtype=np.int64)  # every row is sample 0
        times: list[float] = []
        spent = 0.0
        while len(times) < 5 and (len(times) < 2 or spent < budget):
            start = time.perf_counter()
            batch = (np.take(source, rows, axis=0, out=buffer[:size]) if copies and size > 1
                     else source[:size])
            outputs = backend.predict(batch)
            decoder.decode(outputs, sample_ids)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            spent += elapsed
        return statistics.median(times[1:]) * 1000.0  # the first call pays for warm-up

    try:
        if backend.name != "null":  # the null backend answers zeros of any card's shape
            decoder.check_outputs(backend.predict(source[:1]), 1)
        latency = timed(1, budget_s / 2)
        batch_latency = timed(max_batch_size, budget_s / 2) if max_batch_size > 1 else latency
    except MlperfPilotError:
        raise
    except Exception as exc:
        raise BackendError(
            f"inference failed during warm-up: {type(exc).__name__}: {exc}",
            hint="the model does not accept this input; check --model-path and --model-format",
        ) from exc
    return Estimates(latency_ms=latency, batch_latency_ms=batch_latency,
                     max_batch_size=max_batch_size)


def warm_up(plan: RunPlan, model_path: Path | None, prepared: NpyDirDataset, threads: int,
            progress: Progress) -> tuple[Estimates, int, str]:
    """Load the model here once to prove it works and time it; returns the estimates,
    the largest batch the backend takes and the device it runs on."""
    spec = plan.spec
    backend = create_backend(plan.backend_name)
    with progress.task(f"loading model on {plan.backend_name}/{spec.sut.device.value}"):
        backend.load(LoadOptions(
            model_path=model_path or Path("none"), inputs=plan.fmt.inputs,
            outputs=plan.fmt.postprocess.outputs, device=spec.sut.device, threads=threads,
            extra=dict(plan.fmt.options),
        ))
    fixed = backend.fixed_batch_size
    max_batch = min(spec.sut.max_batch_size, fixed) if fixed else spec.sut.max_batch_size
    device_in_use = backend.device_in_use
    try:
        with progress.task("warm-up"):
            geometry = Geometry.of(plan.recipe, prepared.image_hw)
            decoder = create_decoder(plan.fmt.postprocess, geometry)
            estimates = measure_speed(backend, decoder, prepared, max_batch)
    except OutputMismatchError as exc:
        raise OutputMismatchError(exc.message, output_fix(exc, plan.card, plan.fmt),
                                  fits=exc.fits) from exc
    finally:
        backend.close()
    return estimates, max_batch, device_in_use


__all__ = ["WARMUP_BUDGET_S", "measure_speed", "warm_up"]

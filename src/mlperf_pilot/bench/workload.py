"""Workloads for the benchmarks: synthetic photos in ImageNet layout, and the raw
backend loops mlperf-pilot is compared against.

The photos are generated (smooth gradients, shapes and noise, JPEG quality 90, the size
of a typical ImageNet image) so decoding costs what real photos cost; they are cached
like any dataset. The raw loops use the same Backend.load (same session options,
threads, spinning) and call ``predict`` on inputs batched before timing starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlperf_pilot.assets.cache import AssetCache, BuildResult
from mlperf_pilot.backends.base import Backend


def bench_images(cache: AssetCache, count: int, size: tuple[int, int] = (500, 375),
                 seed: int = 0) -> Path:
    """An ImageNet-layout folder of ``count`` synthetic photos (cached)."""

    def build(folder: Path) -> BuildResult:
        rng = np.random.default_rng(seed)
        (folder / "val").mkdir()
        width, height = size
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        lines = []
        for i in range(count):
            base = rng.uniform(0, 255, 3)
            slope = rng.uniform(-0.4, 0.4, (2, 3))
            img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
            for _ in range(4):  # a few soft blobs
                cy, cx = rng.uniform(0, height), rng.uniform(0, width)
                radius = rng.uniform(20, 120)
                mask = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
                img += mask[..., None] * rng.uniform(-120, 120, 3)
            img += rng.normal(0, 12, img.shape)
            name = f"val/bench_{i:05d}.JPEG"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                folder / name, "JPEG", quality=90)
            lines.append(f"{name} {int(rng.integers(0, 1000))}")
        (folder / "val_map.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return BuildResult(main=None, source=f"{count} synthetic photos {width}x{height}",
                           meta={"count": count, "size": list(size), "seed": seed})

    recipe = {"builder": "bench-images/1", "count": count, "size": list(size), "seed": seed}
    entry, _ = cache.get_or_build("dataset", f"bench-images-{count}", recipe, build)
    return entry.target


@dataclass(frozen=True)
class RawThroughput:
    batch_size: int
    samples_per_s: float
    calls: int


def raw_throughput(backend: Backend, samples: np.ndarray, batch_size: int,
                   seconds: float) -> RawThroughput:
    """A plain loop of predict() on pre-batched inputs, for ``seconds`` (after one
    untimed call)."""
    count = samples.shape[0]
    batches = [np.ascontiguousarray(samples[np.arange(start, start + batch_size) % count])
               for start in range(0, max(count, batch_size), batch_size)]
    backend.predict(batches[0])
    calls = 0
    started = time.perf_counter()
    while True:
        backend.predict(batches[calls % len(batches)])
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
    return RawThroughput(batch_size, calls * batch_size / elapsed, calls)


def raw_latencies_ms(backend: Backend, samples: np.ndarray, seconds: float) -> np.ndarray:
    """Batch-1 predict() latencies over the samples in turn, for ``seconds``."""
    singles = [np.ascontiguousarray(samples[i : i + 1]) for i in range(samples.shape[0])]
    backend.predict(singles[0])
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 64:
        single = singles[len(times) % len(singles)]
        t0 = time.perf_counter()
        backend.predict(single)
        times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1000.0

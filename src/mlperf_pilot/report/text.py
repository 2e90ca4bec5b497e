"""Plain-text renderings of results (pure functions of records)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlperf_pilot.loadgen.logs import LoadGenResult
from mlperf_pilot.vocab import Scenario

_TILES = (50.0, 80.0, 90.0, 95.0, 99.0, 99.9)


def reference_line(scenario: Scenario | str, loadgen: LoadGenResult | Mapping[str, Any],
                   accuracy: float | None = None) -> str:
    """The reference app's one-line summary, from LoadGen's own numbers::

        TestScenario.Offline qps=215.31, mean=0.0431, time=1.652, queries=356,
        tiles=50.0:0.0401,80.0:0.0412,...

    qps is the checker's throughput (or 1/latency for the latency scenarios), times are
    seconds, tiles are latency percentiles in seconds. ``loadgen`` is the parsed result
    (a dict of one, as records written before it was typed hold, is read into one).
    """
    result = loadgen if isinstance(loadgen, LoadGenResult) else \
        LoadGenResult.model_validate(loadgen)
    scenario = Scenario(scenario)
    mean_ns = result.mean_latency_ns
    if scenario in (Scenario.OFFLINE, Scenario.SERVER):
        qps = result.metric_value
    else:
        qps = 1e9 / mean_ns if mean_ns else None
    parts = [f"TestScenario.{scenario.value}"]
    parts.append(f"qps={qps:.2f}" if qps else "qps=n/a")
    if mean_ns:
        parts.append(f"mean={mean_ns / 1e9:.5f}")
    duration_ms = result.duration_ms
    if duration_ms:
        parts.append(f"time={duration_ms / 1000:.3f}")
    if accuracy is not None:
        parts.append(f"acc={accuracy:.3f}%")
    queries = result.query_count
    if queries:
        parts.append(f"queries={queries}")
    percentiles = result.latency_percentiles_ns
    tiles = []
    for tile in _TILES:
        ns = _percentile(percentiles, tile)
        if ns is not None:
            tiles.append(f"{tile}:{ns / 1e9:.4f}")
    if tiles:
        parts.append("tiles=" + ",".join(tiles))
    return parts[0] + " " + ", ".join(parts[1:])


def _percentile(percentiles: dict[Any, Any], tile: float) -> float | None:
    for key, value in percentiles.items():
        try:
            if abs(float(key) - tile) < 1e-6:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None

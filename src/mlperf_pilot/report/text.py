"""Plain-text renderings of results (pure functions of records)."""

from __future__ import annotations

from typing import Any

_TILES = (50.0, 80.0, 90.0, 95.0, 99.0, 99.9)


def reference_line(scenario: str, loadgen: dict[str, Any], accuracy: float | None = None) -> str:
    """The reference app's one-line summary, from LoadGen's own numbers::

        TestScenario.Offline qps=215.31, mean=0.0431, time=1.652, queries=356,
        tiles=50.0:0.0401,80.0:0.0412,...

    qps is the checker's throughput (or 1/latency for the latency scenarios), times are
    seconds, tiles are latency percentiles in seconds.
    """
    value = loadgen.get("metric_value")
    if scenario in ("Offline", "Server"):
        qps = value
    else:
        mean_ns = loadgen.get("mean_latency_ns")
        qps = 1e9 / mean_ns if mean_ns else None
    parts = [f"TestScenario.{scenario}"]
    parts.append(f"qps={qps:.2f}" if qps else "qps=n/a")
    mean_ns = loadgen.get("mean_latency_ns")
    if mean_ns:
        parts.append(f"mean={mean_ns / 1e9:.5f}")
    duration_ms = loadgen.get("duration_ms")
    if duration_ms:
        parts.append(f"time={duration_ms / 1000:.3f}")
    if accuracy is not None:
        parts.append(f"acc={accuracy:.3f}%")
    queries = loadgen.get("query_count")
    if queries:
        parts.append(f"queries={queries}")
    percentiles = loadgen.get("latency_percentiles_ns") or {}
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

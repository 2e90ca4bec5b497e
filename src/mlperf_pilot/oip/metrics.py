"""The server's Prometheus metrics (``GET /metrics``), in a registry of its own.

``mlperf_pilot_requests_total{route,status}``: every HTTP request by route (the route's
template, e.g. ``/v2/models/{name}/infer``, so model names do not multiply the series)
and status code; ``mlperf_pilot_inference_failures_total``: requests answered 500
because the backend failed; ``mlperf_pilot_batch_size`` (samples per backend call),
``mlperf_pilot_batch_requests`` (requests combined into one call),
``mlperf_pilot_queue_seconds`` (a request's wait for a worker) and
``mlperf_pilot_inference_seconds`` (a backend call) as histograms.
"""

from __future__ import annotations

from typing import Any

from mlperf_pilot.errors import MissingDependencyError

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _sizes(largest: int) -> tuple[float, ...]:
    sizes, size = [], 1
    while size < largest:
        sizes.append(float(size))
        size *= 2
    sizes.append(float(largest))
    return tuple(sizes)


class ServerMetrics:
    """The counters and histograms; also the batcher's observer."""

    def __init__(self, max_batch_size: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError as exc:
            raise MissingDependencyError("prometheus-client", "serve",
                                         "mlperf-pilot serve") from exc
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Counter("mlperf_pilot_requests", "HTTP requests by route and status",
                                 ["route", "status"], registry=registry)
        self._failures = Counter("mlperf_pilot_inference_failures",
                                 "requests answered 500 because inference failed",
                                 registry=registry)
        self._batch_size = Histogram("mlperf_pilot_batch_size", "samples per backend call",
                                     buckets=_sizes(max_batch_size), registry=registry)
        self._batch_requests = Histogram("mlperf_pilot_batch_requests",
                                         "requests combined into one backend call",
                                         buckets=_sizes(max_batch_size), registry=registry)
        self._queue = Histogram("mlperf_pilot_queue_seconds",
                                "time a request waited for a batcher worker",
                                buckets=_LATENCY_BUCKETS, registry=registry)
        self._inference = Histogram("mlperf_pilot_inference_seconds",
                                    "time of one backend call", buckets=_LATENCY_BUCKETS,
                                    registry=registry)
        self._children: dict[tuple[str, int], Any] = {}

    def request(self, route: str, status: int) -> None:
        child = self._children.get((route, status))
        if child is None:
            child = self._children[(route, status)] = self._requests.labels(route, str(status))
        child.inc()

    def failure(self) -> None:
        self._failures.inc()

    # the batcher's observer
    def batch(self, samples: int, requests: int, seconds: float, ok: bool) -> None:
        self._batch_size.observe(samples)
        self._batch_requests.observe(requests)
        self._inference.observe(seconds)

    def queued(self, seconds: float) -> None:
        self._queue.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["ServerMetrics"]

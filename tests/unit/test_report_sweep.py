"""report.sweep's choices on hand-made numbers: the Pareto front of throughput vs latency
and the best point per scenario (the numbers of a real sweep: test_sweep_report.py)."""

from __future__ import annotations

from mlperf_pilot.report.sweep import (
    Measure,
    _near_earlier,
    best_per_scenario,
    higher_is_better,
    pareto_front,
)


def test_pareto_front_keeps_only_the_undominated_points() -> None:
    points = [  # (samples/s, p99 ms)
        (100.0, 10.0),  # 0: front (the fastest)
        (150.0, 20.0),  # 1: front
        (140.0, 25.0),  # 2: dominated by 1 (less throughput, more latency)
        (150.0, 30.0),  # 3: dominated by 1 (same throughput, more latency)
        (200.0, 50.0),  # 4: front (the most throughput)
        (90.0, 10.0),   # 5: dominated by 0 (same latency, less throughput)
        (200.0, 50.0),  # 6: equal to 4: neither beats the other, both on the front
    ]
    assert pareto_front(points) == [0, 1, 4, 6]


def test_pareto_front_of_one_point_and_of_a_trade_off_line() -> None:
    assert pareto_front([(5.0, 1.0)]) == [0]
    assert pareto_front([]) == []
    line = [(30.0, 3.0), (10.0, 1.0), (20.0, 2.0)]  # each buys throughput with latency
    assert pareto_front(line) == [1, 2, 0]  # ordered by latency


def _m(point: str, scenario: str, value: float | None, unit: str, status: str = "VALID"
       ) -> Measure:
    return Measure(point=point, label=point, values={}, command=("mlperf-pilot", "run"),
                   scenario=scenario, test_id=f"{point}-{scenario}", status=status,
                   metric_name="m", metric_value=value, metric_unit=unit, throughput=None,
                   p99_ms=None)


def test_best_per_scenario_by_direction_and_validity() -> None:
    assert higher_is_better("Samples/s") and not higher_is_better("ms")
    found = [
        _m("p000", "Offline", 50.0, "Samples/s"),
        _m("p001", "Offline", 90.0, "Samples/s", status="INVALID"),  # faster, not VALID
        _m("p002", "Offline", 70.0, "Samples/s"),
        _m("p000", "SingleStream", 4.0, "ms"),
        _m("p001", "SingleStream", 2.5, "ms"),  # the lowest latency wins
        _m("p002", "SingleStream", None, "ms"),  # no number: never the best
        _m("p000", "Server", 10.0, "Samples/s", status="INVALID"),  # none VALID: the
        _m("p001", "Server", 12.0, "Samples/s", status="INVALID"),  # best of the rest
    ]
    best = {m.scenario: m.point for m in best_per_scenario(found)}
    assert best == {"Offline": "p002", "SingleStream": "p001", "Server": "p001"}


def test_labels_of_coinciding_points_are_stacked() -> None:
    # the demo sweep's Offline points: p000 and p002 lie on top of each other
    pairs = [(87.8, 8308.0), (140.1, 5526.0), (86.8, 8298.0), (157.4, 9199.0)]
    assert [_near_earlier(pairs, i) for i in range(4)] == [0, 0, 1, 0]
    # three points in one spot stack three deep; distant ones never move
    assert [_near_earlier([(1.0, 1.0)] * 3 + [(9.0, 9.0)], i) for i in range(4)] == [0, 1, 2, 0]

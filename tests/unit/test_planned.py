"""LoadGen's planned sample count, read from detail logs (loadgen.planned): real logs of
the shared submission tree and logs in LoadGen's format, cut as a live log can be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlperf_pilot.loadgen.detail import parse_detail
from mlperf_pilot.loadgen.planned import planned_samples, read_planned

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlc-test-submission-v5.0"
RESULTS = SHARED / "open" / "MLCommons" / "results"
needs_shared = pytest.mark.skipif(not RESULTS.is_dir(), reason=f"{SHARED} is not here")


def _line(key: str, value: object) -> str:
    entry = {"key": key, "value": value, "time_ms": 0.0, "namespace": "mlperf::logging",
             "event_type": "POINT_IN_TIME", "metadata": {"is_error": False,
                                                          "is_warning": False}}
    return ":::MLLOG " + json.dumps(entry) + "\n"


def _log(folder: Path, scenario: str, *, count: int, per_query: int, min_queries: int = 1,
         min_duration_ms: int = 0, qps: float = 1.0, max_queries: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join([
        _line("effective_scenario", scenario), _line("effective_test_mode", "PerformanceOnly"),
        _line("effective_min_query_count", min_queries),
        _line("effective_min_duration_ms", min_duration_ms),
        _line("effective_target_qps", qps), _line("effective_max_query_count", max_queries),
        _line("generated_query_count", count), _line("generated_samples_per_query", per_query),
    ])
    (folder / "mlperf_log_detail.txt").write_text(text)
    return folder


@needs_shared
def test_real_offline_logs_plan_their_one_query() -> None:
    logs = sorted(RESULTS.glob("*/*/offline/performance/run_1/mlperf_log_detail.txt"))
    assert logs
    for path in logs:
        log = parse_detail(path)
        # Offline: one query of generated_samples_per_query samples, all of them issued
        assert planned_samples(log) == log.get("generated_samples_per_query") > 0
        assert read_planned(path.parent) == planned_samples(log)


def test_server_issues_every_generated_query(tmp_path: Path) -> None:
    assert read_planned(_log(tmp_path, "Server", count=662, per_query=1)) == 662
    capped = _log(tmp_path / "capped", "Server", count=662, per_query=1, max_queries=500)
    assert read_planned(capped) == 500


def test_single_and_multi_stream_plan_at_the_expected_latency(tmp_path: Path) -> None:
    # LoadGen generates for twice the duration; it stops at min count and min duration
    single = _log(tmp_path / "ss", "SingleStream", count=400, per_query=1, min_queries=100,
                  min_duration_ms=3000, qps=50.0)
    assert read_planned(single) == 150  # 3 s x 50 queries/s > 100 queries
    multi = _log(tmp_path / "ms", "MultiStream", count=1000, per_query=8, min_queries=662,
                 min_duration_ms=1000, qps=20.0)
    assert read_planned(multi) == 662 * 8  # the min query count rules


def test_a_log_still_being_written_is_not_yet_planned(tmp_path: Path) -> None:
    assert read_planned(tmp_path) is None  # no log yet
    folder = _log(tmp_path / "o", "Offline", count=1, per_query=4096)
    text = (folder / "mlperf_log_detail.txt").read_text()
    cut = text[: text.index('"generated_samples_per_query"') + 20]  # a half-written line
    (folder / "mlperf_log_detail.txt").write_text(cut)
    assert read_planned(folder) is None
    (folder / "mlperf_log_detail.txt").write_text(text)
    assert read_planned(folder) == 4096

"""How many samples a LoadGen performance test will issue, read from its live detail log.

LoadGen generates every query of a test before issuing the first and logs what it
generated (``generated_query_count``, ``generated_samples_per_query``) in
mlperf_log_detail.txt, which its IO thread flushes as it goes. From those and the
effective settings logged just before (the result of mlperf.conf, user.conf and
LoadGen's own rules, so nothing is recomputed here):

- Offline: one query of ``generated_samples_per_query`` samples (LoadGen sizes it as
  1.1 x min duration x target QPS, at least min query count) — exact;
- Server: every generated query is issued (its schedule spans the min duration) — exact,
  unless max duration or max query count ends the test early;
- SingleStream / MultiStream: LoadGen generates queries for twice the min duration and
  stops once both the min query count and the min duration are met, so the plan is
  max(min query count, min duration x target QPS) queries at the expected latency; a
  SUT faster than expected answers more in the same time (callers let the total grow).

Accuracy tests issue the whole data set (the caller knows its size).
"""

from __future__ import annotations

import math
from pathlib import Path

from mlperf_pilot.errors import LoadGenError
from mlperf_pilot.loadgen.detail import DETAIL_FILE, DetailLog, parse_detail_text
from mlperf_pilot.loadgen.logs import logged_scenario
from mlperf_pilot.vocab import Scenario


def planned_samples(log: DetailLog) -> int | None:
    """The samples LoadGen plans to issue in this performance test, or None while the
    log does not say yet (queries not generated)."""
    count, per_query = log.get("generated_query_count"), log.get("generated_samples_per_query")
    scenario = logged_scenario(log)
    if count is None or per_query is None or scenario is None:
        return None
    queries = int(count)
    if scenario in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM):
        min_queries = int(log.get("effective_min_query_count", 0) or 0)
        duration_s = float(log.get("effective_min_duration_ms", 0) or 0) / 1000.0
        qps = float(log.get("effective_target_qps", 0) or 0)
        queries = min(queries, max(min_queries, math.ceil(duration_s * qps)))
    max_queries = int(log.get("effective_max_query_count", 0) or 0)
    if max_queries:
        queries = min(queries, max_queries)
    if scenario is Scenario.OFFLINE:
        queries = min(queries, 1)
    return queries * int(per_query)


def read_planned(log_dir: Path) -> int | None:
    """:func:`planned_samples` of a detail log that LoadGen may still be writing (only
    its complete lines are read; a missing or unreadable file is "not yet")."""
    try:
        text = (log_dir / DETAIL_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    text = text[: text.rfind("\n") + 1]
    if "generated_samples_per_query" not in text:
        return None
    try:
        return planned_samples(parse_detail_text(text, str(log_dir / DETAIL_FILE)))
    except LoadGenError:
        return None


__all__ = ["planned_samples", "read_planned"]

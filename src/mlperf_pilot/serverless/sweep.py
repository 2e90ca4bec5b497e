"""``mlperf-pilot serverless sweep``: the serverless benchmark once per memory size (and
per engine), with LoadGen in the loop, as a table, JSON and bar charts.

Each point (backend × memory size) is one ordinary run of ``--sut serverless`` through
the engine (:func:`~mlperf_pilot.engine.resolve_spec` + :func:`~mlperf_pilot.engine.
run_benchmark`, the calls ``run`` makes), with its own results folder
``OUT/runs/<backend>-<MB>mb``. From each LoadGen test it keeps what LoadGen measured — the
throughput (Offline samples/s, Server completed samples/s, SingleStream queries/s) and
the latency percentiles p50/p90 — and the function side of the answers the SUT recorded
(``sut_details``' ``fn_*``: each instance's ``load_model``, the cold answers'
``image_operations``/``forward`` from the warm-up, the warm answers' means). A point that
fails (a setting refused, a bucket missing, a run that raised) is kept with its reason
and the sweep goes on; :attr:`SweepResult.ok` is false when any point failed or any test
was not VALID.

:func:`write_outputs` writes ``sweep.json``, ``sweep.md`` and the PNG charts
(:mod:`mlperf_pilot.serverless.charts`; skipped with a note when matplotlib is not
installed). Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.errors import MlperfPilotError

if TYPE_CHECKING:
    from mlperf_pilot.assets.cache import AssetCache
    from mlperf_pilot.catalog import Catalog
    from mlperf_pilot.progress import Progress
    from mlperf_pilot.results.records import RunRecord

# sut_details keys of the function side -> the sweep's names for them (ms)
FUNCTION_TIMINGS = {
    "cold_load_model_ms": "fn_load_model_ms",
    "cold_image_operations_ms": "fn_warmup_cold_image_operations_ms",
    "cold_forward_ms": "fn_warmup_cold_forward_ms",
    "warm_image_operations_ms": "fn_image_operations_ms",
    "warm_forward_ms": "fn_forward_ms",
    "duration_ms": "fn_duration_ms",
}
FUNCTION_COUNTS = ("fn_answers", "fn_failed", "fn_instances", "fn_warmup_cold_starts")


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """What to sweep. ``layers``: the run settings every point shares (the flags and
    ``--set`` items, as ``run`` layers them); each point adds ``sut.kind: serverless``,
    its backend and memory size and its own results folder."""

    model: str
    backends: tuple[str, ...]
    memory_mb: tuple[int, ...]
    out_dir: Path
    layers: tuple[Mapping[str, Any], ...] = ()
    # the deployed functions' base name (AWS): each point's is <name>-<MB>, as deploy names
    function_name: str | None = None
    # where each point's results folder goes (default OUT/runs)
    runs_dir: Path | None = None

    def points(self) -> list[tuple[str, int]]:
        return [(b, m) for b in self.backends for m in self.memory_mb]


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One LoadGen test of one point."""

    backend: str
    memory_mb: int
    scenario: str
    mode: str
    status: str
    reasons: list[str]
    qps: float | None  # Offline samples/s, Server completed samples/s, SingleStream QPS
    qps_unit: str | None
    p50_ms: float | None  # LoadGen's per-sample latency percentiles
    p90_ms: float | None
    metric: str | None  # LoadGen's own metric, as it names it
    metric_value: float | None
    accuracy: str | None
    samples_failed: int
    function: dict[str, float]  # FUNCTION_TIMINGS' names, ms
    counts: dict[str, int]  # FUNCTION_COUNTS
    run_id: str | None  # the SUT's run id (the bucket prefix) of the test
    log_dir: str
    # local functions: how the memory size was applied (the pool's words), the threads
    confinement: str | None = None
    function_threads: int | None = None

    @property
    def performance(self) -> bool:
        return self.mode == "performance"


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One backend × memory size: its tests, or the reason it has none."""

    backend: str
    memory_mb: int
    results_dir: str
    rows: list[SweepRow]
    error: str | None = None  # the point failed before or instead of its tests
    hint: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.rows) and all(r.status == "VALID"
                                                              for r in self.rows)

    def reasons(self) -> list[str]:
        if self.error is not None:
            return [self.error]
        return [f"{r.scenario} {r.mode}: {reason}" for r in self.rows for reason in r.reasons]


@dataclasses.dataclass
class SweepResult:
    options: SweepOptions
    points: list[SweepPoint]
    started: str
    finished: str
    files: list[Path] = dataclasses.field(default_factory=list)
    charts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.points) and all(p.ok for p in self.points)

    @property
    def rows(self) -> list[SweepRow]:
        return [row for point in self.points for row in point.rows]

    def failed(self) -> list[SweepPoint]:
        return [p for p in self.points if not p.ok]

    def to_dict(self) -> dict[str, Any]:
        options = self.options
        return {
            "ok": self.ok, "model": options.model, "backends": list(options.backends),
            "memory_mb": list(options.memory_mb), "out_dir": str(options.out_dir),
            "started": self.started, "finished": self.finished,
            "points": [{**_clean(dataclasses.asdict(p)), "ok": p.ok} for p in self.points],
            "charts": self.charts, "notes": self.notes,
            "files": [str(f) for f in self.files],
        }


Runner = Callable[..., Any]  # engine.run_benchmark's signature


def run_sweep(options: SweepOptions, *, cache: AssetCache | None = None,
              catalog: Catalog | None = None, progress: Progress | None = None,
              on_point: Callable[[SweepPoint], None] | None = None,
              runner: Runner | None = None) -> SweepResult:
    """Every point in turn (backends outer, memory sizes inner), then the outputs in
    ``options.out_dir``. ``on_point`` sees each point as it finishes."""
    from mlperf_pilot.engine import run_benchmark

    if not options.backends or not options.memory_mb:
        raise ValueError("a sweep needs at least one backend and one memory size")
    runner = runner or run_benchmark
    started = _now()
    points: list[SweepPoint] = []
    for backend, memory_mb in options.points():
        point = run_point(options, backend, memory_mb, cache=cache, catalog=catalog,
                          progress=progress, runner=runner)
        points.append(point)
        if on_point is not None:
            on_point(point)
    result = SweepResult(options=options, points=points, started=started, finished=_now())
    write_outputs(result)
    return result


def point_layer(options: SweepOptions, backend: str, memory_mb: int) -> dict[str, Any]:
    """The settings one point adds over ``options.layers``."""
    sut: dict[str, Any] = {"kind": "serverless", "backend": backend, "memory_mb": memory_mb}
    if options.function_name:
        sut["function_name"] = f"{options.function_name}-{memory_mb}"
    return {"model": options.model, "sut": sut,
            "results_dir": str(point_dir(options, backend, memory_mb))}


def point_dir(options: SweepOptions, backend: str, memory_mb: int) -> Path:
    return (options.runs_dir or options.out_dir / "runs") / f"{backend}-{memory_mb}mb"


def run_point(options: SweepOptions, backend: str, memory_mb: int, *,
              cache: AssetCache | None, catalog: Catalog | None, progress: Progress | None,
              runner: Runner) -> SweepPoint:
    """One run of ``--sut serverless`` for this backend and memory size; a failure is the
    point's ``error`` (its one-line message), never raised (an interrupt is)."""
    import time

    from mlperf_pilot.engine import resolve_spec

    folder = point_dir(options, backend, memory_mb)
    began = time.perf_counter()
    try:
        spec = resolve_spec([*options.layers, point_layer(options, backend, memory_mb)],
                            catalog)
        # recorded in the results store as kind "sweep" (engine.recording)
        summary = runner(spec, cache=cache, catalog=catalog, progress=progress, kind="sweep")
    except MlperfPilotError as exc:
        return SweepPoint(backend, memory_mb, str(folder), [], error=exc.message,
                          hint=exc.hint, seconds=time.perf_counter() - began)
    except Exception as exc:  # a bug or a library's own error: the point, not the sweep
        return SweepPoint(backend, memory_mb, str(folder), [],
                          error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          seconds=time.perf_counter() - began)
    rows = [row_of(record, backend, memory_mb) for record in summary.records]
    error = None if rows else "the run finished no LoadGen test"
    return SweepPoint(backend, memory_mb, str(folder), rows, error=error,
                      seconds=time.perf_counter() - began)


def row_of(record: RunRecord, backend: str, memory_mb: int) -> SweepRow:
    """What the sweep keeps of one LoadGen test's record."""
    scenario = str(getattr(record.scenario, "value", record.scenario))
    mode = str(getattr(record.mode, "value", record.mode))
    qps, unit = throughput(record)
    p50 = p90 = None
    if record.loadgen is not None:
        percentiles = record.loadgen.latency_percentiles_ns
        p50 = _ms(percentiles.get("50.00"))
        p90 = _ms(percentiles.get("90.00"))
    details = record.sut_details
    function = {name: float(details[key]) for name, key in FUNCTION_TIMINGS.items()
                if isinstance(details.get(key), int | float)}
    counts = {key: int(details[key]) for key in FUNCTION_COUNTS
              if isinstance(details.get(key), int | float)}
    run_id = details.get("run_id")
    return SweepRow(
        backend=backend, memory_mb=memory_mb, scenario=scenario, mode=mode,
        status=str(record.status), reasons=list(record.reasons), qps=qps, qps_unit=unit,
        p50_ms=p50, p90_ms=p90, metric=record.metric_name, metric_value=record.metric_value,
        accuracy=record.accuracy.text if record.accuracy is not None else None,
        samples_failed=record.samples_failed, function=function, counts=counts,
        run_id=str(run_id) if run_id is not None else None, log_dir=record.log_dir,
        confinement=str(details["local_confinement"]) if "local_confinement" in details
        else None,
        function_threads=int(details["function_threads"])
        if isinstance(details.get("function_threads"), int | float) else None)


def throughput(record: RunRecord) -> tuple[float | None, str | None]:
    """The test's throughput as LoadGen measured it: Offline samples/s, Server completed
    samples/s, SingleStream/MultiStream queries/s (with LoadGen's overhead)."""
    result = record.loadgen
    if result is None:
        return None, None
    scenario = str(getattr(record.scenario, "value", record.scenario))
    if scenario == "Offline":
        return result.samples_per_second, "samples/s"
    if scenario == "Server":
        return result.completed_samples_per_sec or result.scheduled_samples_per_sec, \
            "samples/s"
    return result.qps_with_loadgen_overhead, "queries/s"


# ------------------------------------------------------------------------------- outputs


def write_outputs(result: SweepResult) -> list[Path]:
    """``sweep.md``, the PNG charts and ``sweep.json`` (last: it lists the charts' bars
    as matplotlib drew them) in ``result.options.out_dir``."""
    out = result.options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    try:
        from mlperf_pilot.serverless.charts import draw_charts

        charts = draw_charts(result.points, out)
    except ImportError as exc:  # matplotlib missing: the table and JSON still come
        charts = []
        result.notes.append(f"no charts: {exc.name or 'matplotlib'} is not installed "
                            "(pip install matplotlib)")
    result.charts = [chart.to_dict() for chart in charts]
    files += [chart.path for chart in charts]
    markdown = out / "sweep.md"
    markdown.write_text(render_markdown(result), encoding="utf-8")
    files.insert(0, markdown)
    data = out / "sweep.json"
    files.insert(0, data)
    result.files = files
    data.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return files


def render_markdown(result: SweepResult) -> str:
    options = result.options
    lines = [f"# Serverless sweep: {options.model}", "",
             f"Engines {', '.join(options.backends)}; memory sizes "
             f"{', '.join(str(m) for m in options.memory_mb)} MB; {result.started} to "
             f"{result.finished}. Throughput and latency are LoadGen's; the function side "
             "is the answers' `inf_perf` (ms).", "",
             "| engine | memory MB | scenario | mode | QPS | p50 ms | p90 ms | status | reasons |",
             "|---|---|---|---|---|---|---|---|---|"]
    for point in result.points:
        if point.error is not None:
            lines.append(f"| {point.backend} | {point.memory_mb} | - | - | - | - | - | FAILED | "
                         f"{_cell(point.error)} |")
            continue
        for row in point.rows:
            qps = f"{row.qps:.2f} {row.qps_unit}" if row.qps is not None else "-"
            if row.accuracy and not row.performance:
                qps = _cell(row.accuracy)
            lines.append(f"| {row.backend} | {row.memory_mb} | {row.scenario} | {row.mode} | "
                         f"{qps} | {_num(row.p50_ms)} | {_num(row.p90_ms)} | {row.status} | "
                         f"{_cell('; '.join(row.reasons)) or '-'} |")
    breakdown = [(p, r) for p in result.points for r in p.rows if r.function]
    if breakdown:
        lines += ["", "Function side (ms; cold = an instance's first answer, in the warm-up; "
                  "warm = the test's answers' means):", "",
                  "| engine | memory MB | scenario | cold load_model | cold image_operations | "
                  "cold forward | warm image_operations | warm forward | handler | answers |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for _, row in breakdown:
            if not row.performance:
                continue
            f = row.function
            lines.append(
                f"| {row.backend} | {row.memory_mb} | {row.scenario} | "
                f"{_num(f.get('cold_load_model_ms'))} | "
                f"{_num(f.get('cold_image_operations_ms'))} | {_num(f.get('cold_forward_ms'))}"
                f" | {_num(f.get('warm_image_operations_ms'))} | "
                f"{_num(f.get('warm_forward_ms'))} | {_num(f.get('duration_ms'))} | "
                f"{row.counts.get('fn_answers', '-')} |")
    confined = {(r.backend, r.memory_mb): r for r in result.rows if r.confinement}
    if confined:
        lines += ["", "How each size was applied (local functions):", ""]
        lines += [f"- {b} {m} MB: {r.confinement}; {r.function_threads} engine thread(s)"
                  for (b, m), r in confined.items()]
    if result.charts:
        lines += ["", "Charts: " + ", ".join(f"[{Path(c['file']).name}]({Path(c['file']).name})"
                                            for c in result.charts)]
    for note in result.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.2f}"


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _clean(value: Any) -> Any:
    """JSON-safe: paths as strings, NaN as null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


__all__ = ["FUNCTION_TIMINGS", "SweepOptions", "SweepPoint", "SweepResult", "SweepRow",
           "point_layer", "render_markdown", "run_point", "run_sweep", "throughput",
           "write_outputs"]

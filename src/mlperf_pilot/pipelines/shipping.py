"""What a pipeline's run step hands back: Tekton results, and the results in its log.

After ``mlperf-pilot run`` a step runs ``mlperf-pilot pipeline step-results``: it reads
the scenario's records (``records/<mode>.json``, what the run concluded), writes the
headline metric and VALID/INVALID where Tekton reads task results (small values: Tekton
caps results at about 4 KB), and prints the scenario's folder to the pod's log as a
gzip'd tar in base64 lines between two marker lines, so that ``pipeline collect`` can
bring the results back from saved pod logs alone (LoadGen's trace is left out; it stays
on the results workspace).
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlperf_pilot.results.records import RunRecord, read_record
from mlperf_pilot.vocab import Mode, RunStatus

BEGIN = "mlperf-pilot-results-begin"
END = "mlperf-pilot-results-end"
LINE = "mlperf-pilot-results:"
_CHUNK = 120
_SKIPPED = frozenset({"mlperf_log_trace.json"})
MAX_SHIPPED_BYTES = 64 * 1024 * 1024  # a larger folder stays on the workspace only


@dataclass(frozen=True)
class StepOutcome:
    """One scenario's verdict: the headline metric (performance, else accuracy)."""

    scenario: str
    verdict: str  # VALID, INVALID or FAILED (no record: the run did not finish a test)
    metric: str  # "<value> <unit>" or ""
    folder: Path | None


def scenario_folders(results_dir: Path, scenario: str) -> list[Path]:
    """``<system>/<model>/<scenario>`` folders under a results folder, sorted."""
    return sorted(p for p in Path(results_dir).glob(f"*/*/{scenario}") if p.is_dir())


def step_outcome(results_dir: Path, scenario: str) -> StepOutcome:
    """What the scenario's records say; FAILED when no record was written."""
    for folder in scenario_folders(results_dir, scenario):
        records = _records(folder)
        if not records:
            continue
        verdict = RunStatus.VALID.value if all(r.status is RunStatus.VALID
                                               for r in records) else RunStatus.INVALID.value
        head = next((r for r in records if r.mode is Mode.PERFORMANCE), records[0])
        metric = ""
        if head.metric_value is not None:
            metric = f"{head.metric_value:.6g} {head.metric_unit or head.metric_name or ''}"
        elif head.accuracy is not None:
            metric = f"{head.accuracy.value:.6g} {head.accuracy.metric}"
        return StepOutcome(scenario, verdict, metric.strip(), folder)
    return StepOutcome(scenario, RunStatus.FAILED.value, "", None)


def _records(folder: Path) -> list[RunRecord]:
    return [read_record(path) for path in sorted((folder / "records").glob("*.json"))]


def archive_lines(folder: Path, results_dir: Path) -> Iterator[str]:
    """The folder as marker-framed base64 lines (paths relative to ``results_dir``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name not in _SKIPPED:
                tar.add(path, arcname=path.relative_to(results_dir).as_posix(),
                        recursive=False)
    data = buffer.getvalue()
    name = folder.relative_to(results_dir).as_posix()
    yield f"{BEGIN} {name} {len(data)}"
    text = base64.b64encode(data).decode("ascii")
    for start in range(0, len(text), _CHUNK):
        yield f"{LINE} {text[start:start + _CHUNK]}"
    yield f"{END} {name}"


_BEGIN_RE = re.compile(rf"{BEGIN} (\S+) (\d+)")
_LINE_RE = re.compile(rf"{LINE} ([A-Za-z0-9+/=]+)")
_END_RE = re.compile(rf"{END} (\S+)")


@dataclass(frozen=True)
class Shipped:
    name: str  # <system>/<model>/<scenario>
    data: bytes  # the tar.gz


def read_shipped(lines: Iterable[str]) -> Iterator[Shipped]:
    """The folders a log carries (a prefix before the markers, as ``tkn`` and ``kubectl
    logs --prefix`` add, is ignored); a block cut short is skipped."""
    name: str | None = None
    size = 0
    parts: list[str] = []
    for line in lines:
        if (begin := _BEGIN_RE.search(line)) is not None:
            name, size, parts = begin.group(1), int(begin.group(2)), []
        elif name is not None and (end := _END_RE.search(line)) is not None:
            data = base64.b64decode("".join(parts))
            if end.group(1) == name and len(data) == size:
                yield Shipped(name, data)
            name = None
        elif name is not None and (chunk := _LINE_RE.search(line)) is not None:
            parts.append(chunk.group(1))


def unpack(shipped: Shipped, results_dir: Path) -> list[Path]:
    """Write a shipped folder under ``results_dir``; members outside it are refused."""
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(shipped.data), mode="r:gz") as tar:
        for member in tar.getmembers():
            inner = PurePosixPath(member.name)
            if not member.isfile() or inner.is_absolute() or ".." in inner.parts:
                continue
            target = Path(results_dir) / Path(*inner.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())
                written.append(target)
    return written


__all__ = [
    "BEGIN",
    "END",
    "LINE",
    "Shipped",
    "StepOutcome",
    "archive_lines",
    "read_shipped",
    "scenario_folders",
    "step_outcome",
    "unpack",
]

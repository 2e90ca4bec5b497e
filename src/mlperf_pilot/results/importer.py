"""Adopting results made elsewhere into the store (``mlperf-pilot results import``).

Every folder under the given one that holds LoadGen's ``mlperf_log_detail.txt`` is one
test. Its logs stay where they are (the stored record's ``log_dir`` names them); they
are read with the project's one log parser (loadgen.logs), so a log of another tool
is read exactly as ours are.

- **A results folder of ours** (``<system>/<model>/<scenario>/``, ``runs/<test id>/``):
  the record mlperf-pilot wrote beside the logs is taken as it is (``records/<mode>.json``,
  a run folder's or an attempt's ``record.json``, a compliance run's ``run.json``), with
  the settings and provenance of its run_spec.json and versions.json.
- **Anything else** (a submission tree, the logs of another harness): the record is
  built from the logs: scenario, mode, validity and metric from LoadGen's own lines;
  model and system from the folders above the scenario's (a submission's
  ``results/<system>/<model>/<scenario>/``); accuracy from ``accuracy.txt``; backend and
  device from the submission's ``systems/<system>.json`` when there is one.

Importing is idempotent: a test whose id or log folder the store has is skipped. A
foreign test's run id is made from its LoadGen start time and a hash of its detail log,
so it is the same every time.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import ConfigError, LoadGenError, StoreError
from mlperf_pilot.loadgen.detail import DETAIL_FILE as DETAIL
from mlperf_pilot.results.provenance import as_utc
from mlperf_pilot.results.records import AccuracyRecord, RunRecord, read_record
from mlperf_pilot.results.runs import RUNS_DIR
from mlperf_pilot.results.store import ResultsStore
from mlperf_pilot.storage import file_sha256
from mlperf_pilot.vocab import Mode, RunStatus, Scenario

_COMPLIANCE = re.compile(r"TEST\d+$")
_ATTEMPT = re.compile(r"performance-(\d+)$")
_ACCURACY = re.compile(r"\b(accuracy|mAP)\s*=\s*([0-9.]+)\s*%")
_TOTAL = re.compile(r"\btotal\s*=\s*(\d+)")


@dataclass
class ImportReport:
    """What an import did: the tests added (id, log folder), those the store had, and
    the folders that could not be read (folder, why)."""

    added: list[tuple[str, str]] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def import_tree(store: ResultsStore, root: Path, *, dry_run: bool = False) -> ImportReport:
    """Every LoadGen test under ``root`` into ``store`` (kind ``import``)."""
    root = Path(root).resolve()
    known_ids, known_dirs = set(), set()
    for row in store.rows():
        known_ids.add(row["test_id"])
        known_dirs.add(str(Path(row["log_dir"]).resolve()))
    report = ImportReport()
    # run folders first: they are the immutable copies of the latest folders' tests
    folders = sorted({p.parent for p in root.rglob(DETAIL)},
                     key=lambda p: (RUNS_DIR not in p.relative_to(root).parts[:-1], str(p)))
    for folder in folders:
        try:
            test_id, record, settings, provenance = _test_of(folder, root)
        except (StoreError, LoadGenError, OSError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            report.problems.append((str(folder), " ".join(message.split())))
            continue
        if test_id in known_ids or str(folder) in known_dirs:
            report.known.append(test_id)
            continue
        if not dry_run:
            store.add(record, kind="import", test_id=test_id, settings=settings,
                      provenance=provenance)
        known_ids.add(test_id)
        known_dirs.add(str(folder))
        report.added.append((test_id, str(folder)))
    return report


def _test_of(folder: Path, root: Path) -> tuple[str, RunRecord, dict[str, Any] | None,
                                                dict[str, Any]]:
    from mlperf_pilot.loadgen.logs import read_result
    from mlperf_pilot.results.store import default_test_id

    result = read_result(folder)  # the logs must read, ours or not
    label = _label(folder)
    ours = _our_record(folder, result.run_mode)
    provenance: dict[str, Any] = {"imported_from": str(root)}
    if ours is not None:
        record = ours.model_copy(update={"log_dir": str(folder)})
        if folder.parent.name == RUNS_DIR:
            return folder.name, record, None, provenance
        return default_test_id(record, label), record, None, provenance
    record, settings, found = _foreign_record(folder, result)
    return default_test_id(record, label), record, settings, {**provenance, **found}


def _label(folder: Path) -> str | None:
    """A compliance test's name, an attempt's number, from the folders' names."""
    for part in reversed(folder.parts[-3:]):
        if _COMPLIANCE.match(part):
            return part
        attempt = _ATTEMPT.match(part)
        if attempt and folder.parent.name == ".attempts":
            return f"attempt{attempt.group(1)}"
    return None


def _our_record(folder: Path, mode: Mode | None) -> RunRecord | None:
    """The record mlperf-pilot wrote for the logs in ``folder``, if it did."""
    candidates = [folder / "record.json", folder / "run.json"]
    # a verified compliance result of ours (<scenario>/TEST01/performance/run_1) is a copy
    # of the logs of the run in <scenario>/.compliance/TEST01/, whose record is there
    for depth, part in enumerate(reversed(folder.parts[-3:])):
        if _COMPLIANCE.match(part):
            test_dir = Path(*folder.parts[:len(folder.parts) - depth])
            candidates.append(test_dir.parent / ".compliance" / part / "run.json")
            break
    if mode is not None:
        root = folder.parent if mode is Mode.ACCURACY else folder.parent.parent
        candidates.append(root / "records" / f"{mode.value}.json")
    for path in candidates:
        if path.is_file():
            try:
                return read_record(path)
            except StoreError:
                continue
    return None


def _foreign_record(folder: Path, result: Any) -> tuple[RunRecord, dict[str, Any],
                                                        dict[str, Any]]:
    """A record built from another tool's logs (see the module's docstring)."""
    scenario_dir = _scenario_dir(folder)
    model = scenario_dir.parent.name if scenario_dir is not None else folder.parent.name
    system = scenario_dir.parent.parent.name if scenario_dir is not None else "imported"
    described = _system_json(scenario_dir, system) if scenario_dir is not None else {}
    # a submission's framework: "onnxruntime v1.21.1", "pytorch v2.6.0", "TensorRT"
    framework = str(described.get("framework") or "unknown").split()
    backend = framework[0]
    backend_version = framework[1].lstrip("v") if len(framework) > 1 else None
    accelerators = str(described.get("accelerators_per_node") or "0").strip()
    device = "cpu" if accelerators in ("", "0") else str(
        described.get("accelerator_model_name") or "accelerator")
    mode = result.run_mode or Mode.PERFORMANCE
    status, reasons = RunStatus.VALID, []
    if result.valid is False:
        status = RunStatus.INVALID
        reasons.append(f"LoadGen: INVALID ({result.invalid_reason or 'see the summary'})")
    if result.num_errors:
        reasons.append(f"LoadGen logged {result.num_errors} error(s)")
    started = _started(result.test_datetime, folder / DETAIL)
    digest = file_sha256(folder / DETAIL)[:12]
    record = RunRecord(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-{digest}", model=model, mlperf_model=model,
        backend=backend, backend_version=backend_version, device=device, device_in_use=device,
        system=system, scenario=result.scenario, mode=mode, status=status,
        reasons=reasons, metric_name=result.metric_name, metric_value=result.metric_value,
        metric_unit=result.metric_unit, accuracy=_accuracy(folder / "accuracy.txt"),
        log_dir=str(folder), started=started,
        duration_s=result.duration_ms / 1000 if result.duration_ms else None,
        loadgen=result, sut_kind="imported",
        sut_details={"imported_from": str(folder)})
    settings: dict[str, Any] = {"loadgen": dict(result.effective_settings)}
    conf = _user_conf(scenario_dir) if scenario_dir is not None else None
    if conf is not None:
        settings["user_conf"] = conf.read_text(encoding="utf-8", errors="replace")
    provenance: dict[str, Any] = {"system": described} if described else {}
    if result.loadgen_version:
        provenance["versions"] = {"packages": {"mlcommons-loadgen": result.loadgen_version}}
    return record, settings, provenance


def _scenario_dir(folder: Path) -> Path | None:
    """The nearest folder (the log folder or above, three at most) named for a scenario
    (a submission's ``offline``, ours ``Offline``)."""
    for candidate in (folder, *list(folder.parents)[:3]):
        try:
            Scenario.parse(candidate.name)
        except ConfigError:
            continue
        return candidate
    return None


def _user_conf(scenario_dir: Path) -> Path | None:
    """The scenario's user.conf: beside its logs, or in a submission's
    ``measurements/<system>/<model>/<scenario>/``."""
    candidates = [scenario_dir / "user.conf"]
    parts = scenario_dir.parts
    if len(parts) > 4 and parts[-4] == "results":
        candidates.append(Path(*parts[:-4], "measurements", *parts[-3:]) / "user.conf")
    return next((path for path in candidates if path.is_file()), None)


def _system_json(scenario_dir: Path, system: str) -> dict[str, Any]:
    """A submission's ``<division>/<org>/systems/<system>.json``, when there is one."""
    for folder in list(scenario_dir.parents)[2:5]:
        path = folder / "systems" / f"{system}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def _started(logged: str | None, detail: Path) -> _dt.datetime:
    if logged:
        try:
            return as_utc(_dt.datetime.fromisoformat(logged.replace("Z", "+00:00")))
        except ValueError:
            pass
    return _dt.datetime.fromtimestamp(int(detail.stat().st_mtime), _dt.timezone.utc)


def _accuracy(path: Path) -> AccuracyRecord | None:
    """The headline accuracy of an ``accuracy.txt`` (``accuracy=76.0%``, ``mAP=37.5%``)."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    found = _ACCURACY.findall(text)
    if not found:
        return None
    name, value = found[-1]
    line = next(line for line in text.splitlines() if _ACCURACY.search(line))
    total = _TOTAL.search(line)
    return AccuracyRecord(metric="top1" if name == "accuracy" else "mAP", value=float(value),
                          text=line.strip(), total=int(total.group(1)) if total else 0)


__all__ = ["ImportReport", "import_tree"]

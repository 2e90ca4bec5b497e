"""``pipeline collect``: a pipeline run's results back into the results folder and store.

The source is either a copy of the results workspace (``kubectl cp POD:/data/results
DIR``, or the volume mounted anywhere): its ``<system>/<model>/<scenario>/`` folders are
copied; or pod logs saved to files (``tkn pipelinerun logs NAME > run.log``, ``kubectl logs
job/mlperf-run --all-containers --prefix``): the folders each run step printed
(:mod:`.shipping`) are unpacked. Then every collected test is imported into the results
store (results.importer, idempotent: collecting twice adds nothing). A scenario folder
the results folder has already is left alone unless ``replace``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.pipelines.shipping import BEGIN, read_shipped, unpack
from mlperf_pilot.vocab import ALL_SCENARIOS

_SCENARIOS = frozenset(s.value for s in ALL_SCENARIOS)
_NOT_COPIED = ("*.sqlite", "*.sqlite-*", "*.lock")
_LOG_MAX_BYTES = 512 * 1024 * 1024


@dataclass
class CollectReport:
    collected: list[str] = field(default_factory=list)  # <system>/<model>/<scenario>
    skipped: list[str] = field(default_factory=list)  # there already (no replace)
    imported: int = 0  # tests added to the store
    known: int = 0  # tests the store had
    problems: list[tuple[str, str]] = field(default_factory=list)
    store: Path | None = None
    # a PipelineRun's own results (`kubectl get pipelinerun NAME -o yaml`): the verdicts
    # and metrics only, nothing to import
    tekton_results: dict[str, Any] = field(default_factory=dict)


def scenario_dirs(folder: Path) -> list[Path]:
    """``<system>/<model>/<scenario>`` folders under ``folder`` (at any depth, so the
    workspace's parent folder works too), outside submission trees and their logs, the
    store's ``runs/`` and hidden folders."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_dir() or path.name not in _SCENARIOS:
            continue
        above = path.relative_to(folder).parts[:-1]
        if any(part.startswith(("submission", ".")) or part == "runs" for part in above):
            continue  # a submission tree, its logs, the store's run folders, staging
        if any((path / sub).is_dir() for sub in ("records", "performance", "accuracy")):
            found.append(path)
    return found


def _log_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = []
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.stat().st_size <= _LOG_MAX_BYTES and \
                path.suffix in ("", ".log", ".txt") and not path.name.startswith("mlperf_log"):
            with path.open("rb") as handle:
                if BEGIN.encode() in handle.read():
                    files.append(path)
    return files


def collect(source: Path, results_dir: Path, *, store: Path | None = None,
            replace: bool = False, to_store: bool = True) -> CollectReport:
    source, results_dir = Path(source), Path(results_dir)
    if not source.exists():
        raise ConfigError(f"{source} does not exist",
                          hint="give --from the copied results workspace or a saved pod log")
    report = CollectReport()
    if source.is_file() and source.suffix in (".json", ".yaml", ".yml"):
        report.tekton_results = pipeline_run_results(source)
        if report.tekton_results:
            return report
    targets: list[Path] = []
    if source.is_dir():
        for folder in scenario_dirs(source):
            name = "/".join(folder.parts[-3:])
            target = results_dir / name
            if target.exists() and not replace:
                report.skipped.append(name)
                continue
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns(*_NOT_COPIED))
            report.collected.append(name)
            targets.append(target)
    for log in _log_files(source):
        with log.open(encoding="utf-8", errors="replace") as lines:
            for shipped in read_shipped(lines):
                target = results_dir / shipped.name
                if shipped.name in report.collected:
                    continue  # the workspace copy is complete (the log leaves out traces)
                if target.exists() and not replace:
                    report.skipped.append(shipped.name)
                    continue
                if target.exists():
                    shutil.rmtree(target)
                unpack(shipped, results_dir)
                report.collected.append(shipped.name)
                targets.append(target)
    if not report.collected and not report.skipped:
        raise ConfigError(f"no results in {source}",
                          hint="give --from the results workspace copied from the cluster "
                               "(kubectl cp), or the run steps' logs (tkn pipelinerun logs)")
    if to_store and targets:
        _import(report, targets, store, results_dir)
    return report


def pipeline_run_results(path: Path) -> dict[str, Any]:
    """``status.results`` of a PipelineRun saved as JSON or YAML ({} for anything else)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(doc, dict) or doc.get("kind") != "PipelineRun":
        return {}
    results = (doc.get("status") or {}).get("results") or []
    return {str(r.get("name")): r.get("value") for r in results if isinstance(r, dict)}


def _import(report: CollectReport, targets: list[Path], store: Path | None,
            results_dir: Path) -> None:
    from mlperf_pilot.results.importer import import_tree
    from mlperf_pilot.results.store import open_store

    opened = open_store(store, results_dir=results_dir)
    report.store = opened.path
    for target in targets:
        imported = import_tree(opened, target)
        report.imported += len(imported.added)
        report.known += len(imported.known)
        report.problems += imported.problems


__all__ = ["CollectReport", "collect", "scenario_dirs"]

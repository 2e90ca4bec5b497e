"""``pipeline validate DIR``: rendered (or hand-edited) manifests checked offline.

Every ``*.yaml``/``*.yml``/``*.json`` file under DIR (each may hold several documents,
or a ``List``) is read; each object is checked by its kind: ``tekton.dev/v1`` kinds
against Tekton's CRD schemas, the others with kubernetes-validate (both in
:mod:`.schema`), then the folder as a whole by :mod:`.semantic`. The result is a list of
:class:`~mlperf_pilot.submission.findings.Finding` (``path``: the file, relative to DIR;
``result``: ``Kind/name field.path``), as ``submission check`` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.errors import ConfigError
from mlperf_pilot.pipelines import schema
from mlperf_pilot.pipelines.semantic import Manifest, check
from mlperf_pilot.submission.findings import Finding
from mlperf_pilot.vocab import Severity

_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ValidationReport:
    folder: Path
    objects: int = 0
    files: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def manifest_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in _SUFFIXES)


def load_manifests(folder: Path, report: ValidationReport) -> list[Manifest]:
    manifests: list[Manifest] = []
    for path in manifest_files(folder):
        name = path.relative_to(folder).as_posix()
        report.files += 1
        try:
            docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            report.findings.append(Finding(Severity.ERROR, "yaml.invalid",
                                           f"not readable YAML{where}: {exc}".splitlines()[0],
                                           "fix the syntax", name))
            continue
        for doc in docs:
            items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" \
                else [doc]
            for item in items or []:
                if item is None:
                    continue
                if not isinstance(item, dict) or not item.get("apiVersion") or \
                        not item.get("kind"):
                    report.findings.append(Finding(
                        Severity.ERROR, "object.kind-missing",
                        "a document without apiVersion and kind",
                        "give every object apiVersion, kind and metadata.name", name))
                    continue
                manifests.append(Manifest(name, item))
    return manifests


def _where(manifest: Manifest, path: str) -> str:
    return f"{manifest.kind}/{manifest.name or '?'} {path}"


def validate_folder(folder: Path, *, crds: Path | None = None,
                    kubernetes_version: str = schema.DEFAULT_KUBERNETES_VERSION
                    ) -> ValidationReport:
    """Every check of every object under ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder",
                          hint="give `pipeline validate` the folder `pipeline render` wrote")
    report = ValidationReport(folder)
    manifests = load_manifests(folder, report)
    if not manifests and not report.findings:
        raise ConfigError(f"{folder} holds no manifests (*.yaml, *.yml, *.json)",
                          hint="render some first: mlperf-pilot pipeline render --out "
                               f"{folder}")
    report.objects = len(manifests)
    for manifest in manifests:
        errors: Any
        if str(manifest.obj.get("apiVersion")).startswith(f"{schema.TEKTON_GROUP}/"):
            if manifest.obj.get("apiVersion") != f"{schema.TEKTON_GROUP}/v1":
                report.findings.append(Finding(
                    Severity.ERROR, "schema.api-version",
                    f"{manifest.obj.get('apiVersion')} is not Tekton's v1 API",
                    "migrate to tekton.dev/v1 (v1alpha1 and PipelineResources are gone, "
                    "v1beta1 is deprecated)", manifest.file, _where(manifest, "apiVersion")))
                continue
            errors = schema.tekton_errors(manifest.obj, crds or schema.BUNDLED_CRDS)
        else:
            errors = schema.core_errors(manifest.obj, kubernetes_version)
        for severity, rule, path, message, fix in errors:
            report.findings.append(Finding(severity, rule, message, fix, manifest.file,
                                           _where(manifest, path)))
    for problem in check(manifests):
        report.findings.append(Finding(problem.severity, problem.rule, problem.message,
                                       problem.fix, problem.manifest.file,
                                       _where(problem.manifest, problem.where)))
    return report


def findings_lines(report: ValidationReport) -> list[str]:
    """Findings grouped by file, each with its rule and fix (as submission check)."""
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for finding in report.findings:
        by_file.setdefault(finding.path, []).append(finding)
    for name in sorted(by_file):
        lines.append(f"{name}:")
        for f in by_file[name]:
            where = f" {f.result}:" if f.result else ""
            lines.append(f"  {f.severity.upper()} [{f.rule}]{where} {f.message}" + (
                f" -> {f.fix}" if f.fix else ""))
    return lines


__all__ = ["ValidationReport", "findings_lines", "load_manifests", "manifest_files",
           "validate_folder"]

"""Structural-schema checks: Tekton kinds against Tekton's own v1 CRD schemas, core kinds
with ``kubernetes-validate`` (strict).

A CRD's ``openAPIV3Schema`` is a structural schema, not quite JSON Schema: it is turned
into one (:func:`json_schema`) the way the API server reads it: where ``properties`` are
listed and nothing is preserved (``x-kubernetes-preserve-unknown-fields``), an unknown
field is an error (the server would prune it: a typo silently lost);
``x-kubernetes-int-or-string`` is an integer or a string; ``nullable`` admits null. Then
``jsonschema`` validates, and each error is a finding naming the field's path.

Core kinds (Job, PersistentVolumeClaim, ServiceAccount, ...) go to kubernetes-validate's
offline schemas with ``strict=True`` (unknown fields are errors); it stops at an object's
first error, so each object gives at most one finding from it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlperf_pilot.errors import ConfigError, MissingDependencyError
from mlperf_pilot.vocab import Severity

TEKTON_GROUP = "tekton.dev"
BUNDLED_CRDS = Path(__file__).with_name("crds")
DEFAULT_KUBERNETES_VERSION = "1.33"  # Indexed Jobs' backoffLimitPerIndex is GA from 1.33
_STRUCTURAL_KEYS = frozenset({"x-kubernetes-preserve-unknown-fields",
                              "x-kubernetes-int-or-string", "x-kubernetes-list-type",
                              "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
                              "x-kubernetes-embedded-resource", "nullable"})


def json_schema(node: Any) -> Any:
    """The JSON Schema a structural schema means (a new tree; the input is kept)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _STRUCTURAL_KEYS:
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"},
                        *([{"type": "null"}] if node.get("nullable") else [])]
    elif node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not preserved:
        out["additionalProperties"] = False
    return out


def _crd_documents(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob("*.y*ml")) + sorted(folder.glob("*.json")):
        try:
            for doc in yaml.load_all(path.read_text(encoding="utf-8"),
                                     Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    yield from (item for item in doc.get("items") or []
                                if isinstance(item, dict))
                elif isinstance(doc, dict):
                    yield doc
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"CRD file {path} cannot be read: {exc}",
                              hint="give --crds a folder of CustomResourceDefinition "
                                   "YAML (kubectl get crd NAME -o yaml)") from None


def tekton_schemas(folder: Path = BUNDLED_CRDS) -> dict[str, Any]:
    """The v1 JSON Schema of each Tekton kind the CRDs in ``folder`` define (read once
    while the folder's files stay the same)."""
    folder = Path(folder)
    files = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                  for p in sorted(folder.iterdir()) if p.is_file()) if folder.is_dir() else ()
    return _schemas(folder, files)


@functools.lru_cache(maxsize=4)
def _schemas(folder: Path, _files: tuple[tuple[str, int, int], ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for doc in _crd_documents(Path(folder)):
        spec = doc.get("spec") or {}
        if doc.get("kind") != "CustomResourceDefinition" or spec.get("group") != TEKTON_GROUP:
            continue
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if version.get("name") == "v1" and schema:
                schemas[spec["names"]["kind"]] = json_schema(schema)
    if not schemas:
        raise ConfigError(f"no Tekton v1 CRD schema in {folder}",
                          hint="give --crds a folder with Tekton's CRDs (kubectl get crd "
                               "tasks.tekton.dev pipelines.tekton.dev "
                               "pipelineruns.tekton.dev -o yaml)")
    return schemas


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(object)"


def _explain(kind: str, where: str) -> str:
    """``kubectl explain``'s path (no list indices)."""
    return f"{kind.lower()}." + re.sub(r"\[\d+\]", "", where)


def tekton_errors(obj: Mapping[str, Any], crds: Path = BUNDLED_CRDS
                  ) -> Iterator[tuple[Severity, str, str, str, str]]:
    """(severity, rule, path, message, fix) per schema error of a tekton.dev/v1 object."""
    try:
        import jsonschema
    except ImportError:
        raise MissingDependencyError(
            "jsonschema is not installed (it checks Tekton kinds against their CRD schemas)",
            hint="pip install 'mlperf-pilot[pipelines]'") from None
    kind = str(obj.get("kind"))
    schemas = tekton_schemas(crds)
    if kind not in schemas:
        yield (Severity.ERROR, "schema.unknown-kind", "kind",
               f"tekton.dev/v1 has no kind {kind!r}",
               f"use one of {', '.join(sorted(schemas))}")
        return
    validator = jsonschema.Draft7Validator(schemas[kind])
    for error in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(e.absolute_path)):
        where = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            yield (Severity.ERROR, "schema.unknown-field", where, error.message,
                   f"remove it or fix its spelling (Tekton v1 {kind}: `kubectl explain "
                   f"{_explain(kind, where)}` on a cluster with Tekton)")
        else:
            yield (Severity.ERROR, f"schema.{error.validator}", where, error.message,
                   f"fix {where} as Tekton's v1 {kind} schema requires")


def core_errors(obj: Mapping[str, Any], version: str = DEFAULT_KUBERNETES_VERSION
                ) -> Iterator[tuple[Severity, str, str, str, str]]:
    """kubernetes-validate's verdict (strict) on a core kind: its first error, if any."""
    try:
        import kubernetes_validate
        import kubernetes_validate.utils
    except ImportError:
        raise MissingDependencyError(
            "kubernetes-validate is not installed (it checks Kubernetes' own kinds)",
            hint="pip install 'mlperf-pilot[pipelines]'") from None
    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        yield (Severity.ERROR, "schema.unknown-kind", "kind", exc.message,
               f"check apiVersion and kind (Kubernetes {version})")
    except kubernetes_validate.utils.VersionNotSupportedError as exc:
        raise ConfigError(exc.message, hint="give --kubernetes-version 1.25 to 1.37") from None
    except kubernetes_validate.ValidationError as exc:
        where = _path(exc.absolute_path)
        unknown = exc.validator == "additionalProperties"
        yield (Severity.ERROR, "schema.unknown-field" if unknown else f"schema.{exc.validator}",
               where, exc.message,
               f"remove it or fix its spelling (`kubectl explain "
               f"{_explain(str(obj.get('kind')), where)}`)" if unknown else
               f"fix {where} as Kubernetes {version}'s {obj.get('kind')} schema requires")


__all__ = ["BUNDLED_CRDS", "DEFAULT_KUBERNETES_VERSION", "core_errors", "json_schema",
           "tekton_errors", "tekton_schemas"]

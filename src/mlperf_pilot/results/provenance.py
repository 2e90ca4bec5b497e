"""Where a result comes from: the versions of every component, and what a run resolved.

Two files beside every scenario's results carry it: ``versions.json`` (a
:class:`Versions`) and ``run_spec.json``, ``{"spec": <the RunSpec as saved>,
"resolved": <a Provenance>}``. :func:`read_run_spec` reads both shapes this tool has
written: keys an older file lacks are None, keys it has that this version no longer
knows are ignored. Built in code, the models refuse unknown keys (a typo is an error).

A run's identity lives here too: :func:`new_run_id` (one id per ``mlperf-pilot run``,
time-based so ids sort by start) and :func:`utc_now` (the times records state).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from mlperf_pilot.errors import StoreError
from mlperf_pilot.storage import write_text_atomic

_PACKAGES = (
    "mlperf-pilot", "mlcommons-loadgen", "onnxruntime", "onnxruntime-gpu", "numpy",
    "pillow", "opencv-python-headless", "opencv-python", "torch", "pydantic",
)
# validation context of a file being read: unknown keys are dropped, not refused
_SAVED = {"saved": True}


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    found = {}
    for name in (*_PACKAGES, *extra):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------- run identity


def utc_now() -> _dt.datetime:
    """Now, timezone-aware UTC, to the second (as records have always stated times)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def new_run_id(started: _dt.datetime | None = None) -> str:
    """A fresh run id: ``<UTC start, %Y%m%dT%H%M%SZ>-<12 random hex digits>``; ids sort
    by start time. ``started`` defaults to now."""
    when = as_utc(started) if started is not None else utc_now()
    return f"{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def as_utc(value: _dt.datetime) -> _dt.datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)


def why_unreadable(exc: BaseException) -> str:
    """One line saying why a saved file did not validate (or could not be read)."""
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(str(part) for part in error['loc']) or 'the file'}: "
                    f"{error['msg']}" for error in exc.errors()]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return "; ".join(problems[:3]) + more
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return " ".join(str(exc).split())


# ------------------------------------------------------------------------------- models


class _Saved(BaseModel):
    """Unknown keys: an error when built in code, dropped when read from a file
    (validated with context ``{"saved": True}``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and not (info.context or {}).get("saved"):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)} of {cls.__name__}")
        return data


class Versions(_Saved):
    """What :func:`collect_versions` finds: the interpreter, the machine, the packages."""

    python: str
    platform: str
    machine: str
    cpu: str
    cpu_count: int | None = None
    packages: dict[str, str] = Field(default_factory=dict)  # distribution -> version

    @classmethod
    def collect(cls, extra: tuple[str, ...] = ()) -> Versions:
        return cls(
            python=sys.version.split()[0],
            platform=platform.platform(),
            machine=platform.machine(),
            cpu=cpu_model(),
            cpu_count=os.cpu_count(),
            packages=package_versions(extra),
        )


def collect_versions(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """:meth:`Versions.collect` as a plain dict (the shape of versions.json)."""
    return Versions.collect(extra).model_dump(mode="json")


class WarmupEstimates(_Saved):
    latency_ms: float | None = None  # one sample, batch 1
    batch_latency_ms: float | None = None  # one batch of max_batch_size


class Provenance(_Saved):
    """What a run resolved before its tests ran (``run_spec.json``'s ``resolved``).

    The local-SUT fields (model, backend, threads ...) are None for a SUT kind that has
    none; ``workers``/``threads`` are the scenario's layout.
    """

    command: str | None = None  # the command line as given (None from the Python API)
    run_id: str | None = None  # the id its RunRecords carry (results.records.new_run_id)
    started: _dt.datetime | None = None  # when the run started, UTC
    system: str | None = None  # the system name results are filed under
    sut_kind: str = "local"
    model_path: Path | None = None
    model_source: str | None = None  # where the model came from ("cached ..." when reused)
    # the model file checked against a pinned checksum: False for --model-path, `cache add
    # --no-verify`, a format without one; None where unknown (older files, no model file)
    model_verified: bool | None = None
    dataset_root: Path | None = None
    dataset_source: str | None = None
    dataset_count: int | None = None
    preprocessed: Path | None = None  # the folder of preprocessed samples
    preprocessing_library: str | None = None
    backend: str | None = None
    backend_version: str | None = None
    device_in_use: str | None = None
    max_batch_size: int | None = None
    warmup_estimates: WarmupEstimates | None = None
    workers: int | None = None
    threads: int | None = None
    versions: Versions | None = None

    @field_validator("started")
    @classmethod
    def _utc(cls, value: _dt.datetime | None) -> _dt.datetime | None:
        return as_utc(value) if value is not None else None

    @field_serializer("started", when_used="json")
    def _iso(self, value: _dt.datetime | None) -> str | None:
        # "+00:00", not pydantic's "Z": what earlier records hold, and what
        # datetime.fromisoformat reads before Python 3.11
        return value.isoformat() if value is not None else None


class RunSpecFile(BaseModel):
    """A saved run_spec.json: the RunSpec as it was dumped, and the Provenance."""

    model_config = ConfigDict(frozen=True)

    spec: dict[str, Any] = Field(default_factory=dict)
    resolved: Provenance = Field(default_factory=Provenance)

    @property
    def execution_mode(self) -> str | None:
        value = self.spec.get("execution_mode")
        return str(value) if value is not None else None

    @property
    def model_format(self) -> str | None:
        """The model format id: under ``sut`` now, at the top level in older files."""
        sut = self.spec.get("sut")
        value = (sut.get("model_format") if isinstance(sut, Mapping) else None) \
            or self.spec.get("model_format")
        return str(value) if value is not None else None


def run_spec_text(spec: BaseModel | Mapping[str, Any], resolved: Provenance) -> str:
    """The text of a run_spec.json (``spec``: a RunSpec or its JSON dump)."""
    dumped = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)
    return json.dumps({"spec": dumped, "resolved": resolved.model_dump(mode="json")},
                      indent=2) + "\n"


def write_run_spec(path: Path, spec: BaseModel | Mapping[str, Any],
                   resolved: Provenance) -> None:
    write_text_atomic(Path(path), run_spec_text(spec, resolved))


def read_run_spec(path: Path) -> RunSpecFile:
    """A run_spec.json as this version or an earlier one wrote it; StoreError when it
    cannot be read or is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"run spec {path} cannot be read: {why_unreadable(exc)}",
                         hint="rerun the scenario to write it again") from exc
    if not isinstance(data, dict):
        raise StoreError(f"run spec {path} is not a JSON object",
                         hint="rerun the scenario to write it again")
    try:
        return RunSpecFile.model_validate(
            {"spec": data.get("spec") or {}, "resolved": data.get("resolved") or {}},
            context=_SAVED)
    except ValueError as exc:
        raise StoreError(f"run spec {path} is not one mlperf-pilot wrote: "
                         f"{why_unreadable(exc)}",
                         hint="rerun the scenario to write it again") from exc


def write_versions(path: Path, versions: Versions) -> None:
    write_text_atomic(Path(path), versions.model_dump_json(indent=2) + "\n")


def read_versions(path: Path) -> Versions:
    """A versions.json; StoreError when it cannot be read or is not one."""
    path = Path(path)
    try:
        return Versions.model_validate(json.loads(path.read_text(encoding="utf-8")),
                                       context=_SAVED)
    except (OSError, ValueError) as exc:
        raise StoreError(f"versions file {path} cannot be read: {why_unreadable(exc)}",
                         hint="rerun the scenario to write it again") from exc

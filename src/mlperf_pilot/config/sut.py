"""What a SUT kind is configured with: ``RunSpec.sut``, discriminated on ``kind``.

Every kind shares the batcher's settings (:class:`SutConfig`); a kind adds what belongs
to it. The built-in ``local`` kind (:class:`LocalSutConfig`) runs an in-process backend:
backend, device, model format and file, workers and threads live here. Other kinds come
from the SUT registry (``mlperf_pilot.sut.registry``, entry-point group
``mlperf_pilot.suts``): the kind's plugin names its config class, so a kind added by
another package validates exactly like a built-in one.

Old flat configs keep working: ``backend``, ``device``, ``model_format``,
``model_path`` and ``model_sha256`` at the top level of a layer are moved under
``sut`` (:func:`lift_legacy_keys`), layer by layer, so a later layer still wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlperf_pilot.vocab import Device, Scenario

MAX_BATCH_TIMEOUT_US = 10**9  # 1000 s; Python's queue timeouts overflow past ~9e9 s

# top-level keys of the flat (pre-``sut.kind``) configs, now settings of the local kind
LEGACY_SUT_KEYS = ("backend", "device", "model_format", "model_path", "model_sha256")
DEFAULT_KIND = "local"


class SutConfig(BaseModel):
    """The settings every SUT kind has: how the batcher forms batches and what a failed
    sample does to the rest of the run."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    kind: str = DEFAULT_KIND
    max_batch_size: int = Field(default=8, ge=1)
    # Server/MultiStream: how long the batcher may wait for more samples before running a
    # partial batch; 0 = run whatever is queued at once.
    batch_timeout_us: int = Field(default=0, ge=0, le=MAX_BATCH_TIMEOUT_US)
    # Batches in flight at once (worker threads); 0 = by scenario (see ``layout``).
    # (max_batch_size and workers have no upper bound here: plan_run refuses what this
    # machine's memory and cores cannot carry, naming the limit.)
    workers: int = Field(default=0, ge=0)
    # After a failed inference: "stop" completes every later sample without running it
    # (the run is INVALID either way and ends quickly); "continue" keeps trying.
    on_error: str = Field(default="stop", pattern="^(stop|continue)$")

    def default_system_name(self) -> str:
        """The results tree's system folder when ``system_name`` is not given."""
        return self.kind

    def layout(self, scenario: Scenario, cores: int, *, parallel: bool) -> tuple[int, int]:
        """(workers, threads per worker) for one scenario: one worker unless asked."""
        return self.workers or 1, 1


class LocalSutConfig(SutConfig):
    """The in-process SUT: a backend runs the model file on this machine."""

    kind: Literal["local"] = "local"
    backend: str | None = None  # None = the card's default backend
    device: Device = Device.CPU
    model_format: str | None = None  # a card format id, e.g. "onnx-opset11"
    model_path: Path | None = None
    # the sha256 of what the model format's URLs serve, for a format the catalog pins
    # no checksum for
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    # Backend intra-op threads; 0 = the number of usable cores divided by ``workers``.
    threads: int = Field(default=0, ge=0)
    # Busy-waiting backend threads: "auto" = on, except in Server, where LoadGen's issue
    # thread needs the cores.
    spin_wait: str = Field(default="auto", pattern="^(auto|on|off)$")

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return Device.parse(value) if isinstance(value, str) else value

    @field_validator("spin_wait", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        # YAML (config files, --set) reads a bare on/off as a boolean
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    def default_system_name(self) -> str:
        return f"{self.backend or 'default'}-{self.device.value}"

    def layout(self, scenario: Scenario, cores: int, *, parallel: bool) -> tuple[int, int]:
        """(workers, intra-op threads per worker) for one scenario, never more threads
        than ``cores`` unless the user asked for them. Measured on 2 cores
        (benchmarks/results/scaling.md): Offline, SingleStream and MultiStream are
        best with one worker using every core; Server, where the backend's idle threads
        do not spin and batches are mostly small, with one single-threaded worker per
        core (EfficientNet-Lite0 peak VALID QPS 0.98x Offline against 0.73x).
        ``parallel`` is false for backends that run one call at a time, or off the CPU:
        they get one worker."""
        workers = self.workers
        if not workers:
            workers = 1
            if Scenario(scenario) is Scenario.SERVER and parallel:
                workers = max(1, cores // (self.threads or 1))
        threads = self.threads or max(1, cores // workers)
        return workers, threads

    def spin_for(self, scenario: Scenario) -> bool:
        if self.spin_wait == "auto":
            return Scenario(scenario) is not Scenario.SERVER
        return self.spin_wait == "on"


def sut_config_class(kind: str) -> type[SutConfig]:
    """The config class of a SUT kind (built-in or from the SUT registry)."""
    if kind == DEFAULT_KIND:
        return LocalSutConfig
    from mlperf_pilot.sut.registry import sut_kind

    return sut_kind(kind).config


def known_sut_fields() -> dict[str, type[SutConfig]]:
    """Every setting some SUT kind has -> a kind that has it (for ``--set sut.X``)."""
    from mlperf_pilot.sut.registry import SUT_KINDS

    found: dict[str, type[SutConfig]] = {}
    for kind in SUT_KINDS.names():
        try:
            cls = sut_config_class(kind)
        except Exception:  # a broken plugin is reported when it is chosen
            continue
        for name in cls.model_fields:
            found.setdefault(name, cls)
    return found


def parse_sut(value: Any) -> Any:
    """A ``sut`` mapping -> the config of its kind (validated there, errors keep their
    ``sut.`` location)."""
    if isinstance(value, SutConfig):
        return value
    if isinstance(value, Mapping):
        kind = value.get("kind", DEFAULT_KIND)
        if not isinstance(kind, str):
            raise ValueError(f"sut.kind must be a name, not {kind!r}")
        return sut_config_class(kind).model_validate(dict(value))
    return value


def lift_legacy_keys(layer: Mapping[str, Any]) -> dict[str, Any]:
    """A config layer with the flat keys of old configs moved under ``sut``."""
    flat = {key: layer[key] for key in LEGACY_SUT_KEYS if key in layer}
    if not flat:
        return dict(layer)
    moved = {key: value for key, value in layer.items() if key not in flat}
    sut = layer.get("sut")
    if isinstance(sut, SutConfig):
        sut = sut.model_dump(exclude_unset=True)
    moved["sut"] = {**flat, **(dict(sut) if isinstance(sut, Mapping) else {})}
    return moved


__all__ = ["DEFAULT_KIND", "LEGACY_SUT_KEYS", "LocalSutConfig", "SutConfig",
           "known_sut_fields", "lift_legacy_keys", "parse_sut", "sut_config_class"]

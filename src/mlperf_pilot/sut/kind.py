"""The SUT plugin axis: what one kind of system under test provides to the engine.

A kind has three steps, one per place it runs:

- ``plan`` (parent, before anything is fetched or run): check the names and
  combinations it depends on, choose the card format whose preprocessing and decoding
  the run uses, give the default system name -> :class:`SutPlan`;
- ``resolve`` (parent, before the data is prepared): find what it needs (a model
  file, a server address);
- ``prepare`` (parent, once the samples are ready): probe it on real data, measure
  what the warm-up estimates start from ->
  :class:`PreparedSut`, whose ``config`` is the kind's config with everything
  resolved, so a job carries it to another process or machine as it is;
- ``open`` (child, once per LoadGen test): build the :class:`~mlperf_pilot.sut.base.Sut`
  LoadGen drives, warmed up, from the job alone (never from the catalog).

Kinds are registered in :mod:`mlperf_pilot.sut.registry` under their config's ``kind``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from mlperf_pilot.catalog.cards import ModelFormat
from mlperf_pilot.config.sut import SutConfig
from mlperf_pilot.loadgen.settings import Estimates
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.catalog import Catalog, ModelCard
    from mlperf_pilot.config.spec import RunSpec
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.engine.job import TestJob
    from mlperf_pilot.sut.base import Sut


class SutPlan(BaseModel):
    """What planning decided about the SUT (no I/O happened yet)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    kind: str
    fmt: ModelFormat  # the card format: preprocessing, postprocess, tensor names
    label: str  # for people: "onnxruntime/cpu"
    system: str  # the default system name
    # whether several workers may run at once on this machine's cores (the thread layout)
    parallel: bool = False
    details: dict[str, Any] = Field(default_factory=dict)  # kind-specific (e.g. backend)


class PreparedSut(BaseModel):
    """The SUT resolved and probed in the parent."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: SerializeAsAny[SutConfig]  # resolved: every file and name the child needs
    max_batch_size: int
    estimates: Estimates  # what the warm-up measured: test runs' targets start here
    name: str  # e.g. the backend's name
    version: str | None = None
    device_in_use: str = "unknown"
    model_path: str | None = None  # the model file, where the kind uses one
    model_source: str = ""  # where it came from, for people
    # whether the model file was checked against a pinned checksum (None: no model file)
    model_verified: bool | None = None
    notes: tuple[str, ...] = ()


class ResolvedSut(BaseModel):
    """What a kind resolved before the data is prepared (e.g. its model file)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: SerializeAsAny[SutConfig]  # with the files and names found
    source: str = ""  # where the model came from, for people
    model_verified: bool | None = None  # see PreparedSut.model_verified


class PrepareContext(BaseModel):
    """What a kind's ``prepare`` gets."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    spec: Any  # RunSpec
    card: Any  # ModelCard
    plan: SutPlan
    resolved: ResolvedSut  # what ``resolve`` found
    recipe: Any  # PreprocessSpec
    dataset: Any  # NpyDirDataset (the preprocessed samples)
    cache: Any  # AssetCache
    progress: Any  # Progress
    transport: Any = None  # httpx.BaseTransport for downloads (tests)
    threads: int = 1  # intra-op threads for the warm-up (as one Offline worker)


class SutKind(abc.ABC):
    """One kind of system under test (a plugin class; never instantiated)."""

    name: ClassVar[str]
    config: ClassVar[type[SutConfig]]

    @classmethod
    @abc.abstractmethod
    def plan(cls, spec: RunSpec, card: ModelCard, catalog: Catalog) -> SutPlan:
        """Check names and combinations (raise ConfigError with the fix)."""

    @classmethod
    def resolve(cls, spec: RunSpec, plan: SutPlan, card: ModelCard, *, cache: Any,
                progress: Any, transport: Any = None) -> ResolvedSut:
        """Find what the SUT needs before the data is prepared (a wrong or missing model
        file is found before minutes of preprocessing); default: nothing to find."""
        return ResolvedSut(config=spec.sut)

    @classmethod
    @abc.abstractmethod
    def prepare(cls, ctx: PrepareContext) -> PreparedSut:
        """Resolve and probe the SUT in the parent; measure the warm-up estimates."""

    @classmethod
    @abc.abstractmethod
    def open(cls, job: TestJob, store: SampleStore, decoder: Decoder) -> Sut:
        """The SUT of one LoadGen test (child side), from the job alone."""

    @classmethod
    def scenario_config_of(cls, config: SutConfig, scenario: Scenario, cores: int,
                           parallel: bool) -> SutConfig:
        """The config one scenario's tests run with (workers, and threads where the
        kind has them, resolved by its layout)."""
        workers, threads = config.layout(scenario, cores, parallel=parallel)
        update: dict[str, Any] = {"workers": workers}
        if "threads" in type(config).model_fields:
            update["threads"] = threads
        return config.model_copy(update=update)

__all__ = ["PrepareContext", "PreparedSut", "ResolvedSut", "SutKind", "SutPlan"]

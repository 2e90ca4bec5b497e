"""One LoadGen test as a self-contained job: everything the process that runs it needs.

The job carries the resolved model format (tensor names, postprocess, options), the
preprocessing recipe the decoder's geometry comes from, the MLPerf model name, the
sample counts, the accuracy metric, the SUT's resolved config and the user.conf text,
so the child never reads the catalog, and the same job file could run on another
machine that has the files it names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from mlperf_pilot.catalog.cards import ModelFormat, PreprocessSpec
from mlperf_pilot.config.sut import SutConfig, parse_sut
from mlperf_pilot.datasets.prepared import NpyDirDataset
from mlperf_pilot.results.layout import ScenarioPaths
from mlperf_pilot.results.submittable import SubmissionFacts
from mlperf_pilot.vocab import Mode, Scenario


class DatasetRef(BaseModel):
    """Enough to reopen a preprocessed dataset in another process."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    folder: Path
    count: int
    sample_shape: tuple[int, ...]
    dtype: str
    labels: list[int]
    library: str
    annotations: Path | None = None
    image_hw: list[tuple[int, int]] | None = None

    @classmethod
    def of(cls, dataset: NpyDirDataset) -> DatasetRef:
        hw = None if dataset.image_hw is None else [
            (int(h), int(w)) for h, w in dataset.image_hw]
        return cls(folder=dataset.folder, count=dataset.count,
                   sample_shape=tuple(dataset.sample_shape), dtype=str(dataset.dtype),
                   labels=[int(v) for v in dataset.labels], library=dataset.library,
                   annotations=dataset.annotations, image_hw=hw)

    def open(self) -> NpyDirDataset:
        return NpyDirDataset(
            folder=self.folder, count=self.count, sample_shape=self.sample_shape,
            dtype=np.dtype(self.dtype), labels=np.asarray(self.labels, dtype=np.int64),
            library=self.library, built_now=0, annotations=self.annotations,
            image_hw=None if self.image_hw is None else np.asarray(self.image_hw, np.int64),
        )


class ModelRef(BaseModel):
    """The model as the test sees it: names for the record, the card format for the
    tensors and the decoder, the recipe for the decoder's geometry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str  # the catalog card's name
    mlperf_model: str  # the name LoadGen and the submission use
    fmt: ModelFormat
    recipe: PreprocessSpec
    performance_sample_count: int = Field(ge=1)
    accuracy_metric: str


class TestJob(BaseModel):
    """Everything one LoadGen test needs to run and write its record."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(frozen=True, extra="forbid")
    run_id: str
    model: ModelRef
    sut: SerializeAsAny[SutConfig]  # resolved for this scenario (workers, threads, files)
    system: str
    dataset: DatasetRef
    scenario: Scenario
    mode: Mode
    scenario_root: Path
    user_conf: str  # the text of the user.conf this test loads
    audit_config: Path | None = None
    progress_interval_s: float = 0.25
    # compliance runs: their own log folder and record, and TEST05's alternate seeds
    log_dir: Path | None = None
    record_path: Path | None = None
    test05: bool = False
    label: str | None = None
    # what the record is judged against for a submission (results.submittable)
    facts: SubmissionFacts | None = None
    # keep LoadGen's trace of a performance test (RunSpec.trace)
    trace: bool = False

    @field_validator("sut", mode="before")
    @classmethod
    def _sut_of_kind(cls, value: object) -> object:
        return parse_sut(value)

    @property
    def logs(self) -> Path:
        return self.log_dir or ScenarioPaths(self.scenario_root).log_dir(self.mode)

    @property
    def record_file(self) -> Path:
        return self.record_path or ScenarioPaths(self.scenario_root).record(self.mode)

    @property
    def sut_name(self) -> str:
        """What the record's ``backend`` names: the local backend, else the SUT kind."""
        return str(getattr(self.sut, "backend", None) or self.sut.kind)

    @property
    def device_name(self) -> str:
        device = getattr(self.sut, "device", None)
        return "n/a" if device is None else str(getattr(device, "value", device))

    @property
    def title(self) -> str:
        return self.label or f"{self.scenario.value} {self.mode.value}"


__all__ = ["DatasetRef", "ModelRef", "TestJob"]

"""The engine's seams: a SUT kind registered by a test runs through the real LoadGen via
the inline launcher; a catalog passed in reaches the test process; the Python API
layers a spec over the card's run_defaults as the CLI does; compliance rounds are
checked before any run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest

from mlperf_pilot.catalog import load_catalog
from mlperf_pilot.catalog.loader import Catalog
from mlperf_pilot.config import RunSpec, SutConfig
from mlperf_pilot.decoders import create_decoder
from mlperf_pilot.engine import InlineLauncher, RunObserver, plan_run, resolve_spec, run_benchmark
from mlperf_pilot.errors import ConfigError, UnknownPluginError
from mlperf_pilot.results.records import read_record
from mlperf_pilot.sut.base import BatchingSut, SutDescription
from mlperf_pilot.sut.kind import PreparedSut, SutKind, SutPlan
from mlperf_pilot.sut.registry import SUT_KINDS
from mlperf_pilot.sut.warmup import measure_speed


class MeanConfig(SutConfig):
    kind: Literal["mean-test"] = "mean-test"
    scale: float = 1.0


class MeanPredictor:
    """A real computation: class scores from each image's channel means."""

    thread_safe = True
    fixed_batch_size = None

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.calls = 0

    def predict(self, batch: np.ndarray) -> Sequence[np.ndarray]:
        self.calls += 1
        means = batch.reshape(batch.shape[0], batch.shape[1], -1).mean(axis=2)
        scores = np.zeros((batch.shape[0], 1001), dtype=np.float32)
        scores[:, :means.shape[1]] = means * self.scale
        return [np.argmax(scores, axis=1).astype(np.int64)]


class MeanSut(BatchingSut):
    kind = "mean-test"

    def describe(self) -> SutDescription:
        return SutDescription(kind=self.kind, name="channel-means", version="1",
                              device_in_use="numpy", details=self.batcher_details())


class MeanKind(SutKind):
    name = "mean-test"
    config = MeanConfig
    opened: ClassVar[int] = 0

    @classmethod
    def plan(cls, spec, card, catalog) -> SutPlan:  # type: ignore[no-untyped-def]
        return SutPlan(kind=cls.name, fmt=card.format(None), label="mean-test/numpy",
                       system="mean-test", parallel=True)

    @classmethod
    def prepare(cls, ctx) -> PreparedSut:  # type: ignore[no-untyped-def]
        config = ctx.resolved.config
        decoder = create_decoder(ctx.plan.fmt.postprocess)
        estimates = measure_speed(MeanPredictor(config.scale), decoder, ctx.dataset,
                                  config.max_batch_size, budget_s=0.5)
        return PreparedSut(config=config, max_batch_size=config.max_batch_size,
                           estimates=estimates, name="channel-means", version="1",
                           device_in_use="numpy", model_source="computed in the test")

    @classmethod
    def open(cls, job, store, decoder) -> MeanSut:  # type: ignore[no-untyped-def]
        cls.opened += 1
        return MeanSut(MeanPredictor(job.sut.scale), store, decoder, job.sut)


@pytest.fixture
def mean_kind() -> Iterator[type[MeanKind]]:
    SUT_KINDS.register("mean-test", MeanKind)
    MeanKind.opened = 0
    yield MeanKind
    SUT_KINDS.unregister("mean-test")


class Events(RunObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def run_started(self, plan, results_dir) -> None:  # type: ignore[no-untyped-def]
        self.seen.append("started")

    def prepared(self, run) -> None:  # type: ignore[no-untyped-def]
        self.seen.append("prepared")

    def record(self, record) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(f"record {record.scenario} {record.mode}")


def test_a_registered_sut_kind_runs_through_loadgen_inline(
        mean_kind: type[MeanKind], colour_imagenet: Path, tmp_path: Path) -> None:
    events = Events()
    spec = RunSpec(model="resnet50", dataset_path=colour_imagenet, results_dir=tmp_path,
                   scenarios=["Offline", "SingleStream"], test_duration_ms=300,
                   sut={"kind": "mean-test", "scale": 2.0, "max_batch_size": 4},
                   preprocess_workers=1)
    summary = run_benchmark(spec, launcher=InlineLauncher(), observer=events)
    # LoadGen loads mlperf.conf once per process: from the second inline test on it says
    # so, and the run is honestly INVALID for that reason only (why tests run in a child)
    first, *later = summary.records
    assert first.status == "VALID" and first.reasons == [], first.reasons
    for record in later:
        assert record.reasons == ["LoadGen error: Multiple conf files are used. This is not "
                                  "valid for official submission."], record.reasons
        assert record.samples_failed == 0
        assert record.metric_value if record.mode == "performance" else record.accuracy
    assert mean_kind.opened == 4  # one SUT per LoadGen test, in this process
    assert {(r.scenario, r.mode) for r in summary.records} == {
        ("Offline", "accuracy"), ("Offline", "performance"),
        ("SingleStream", "accuracy"), ("SingleStream", "performance")}
    for record in summary.records:
        assert record.system == "mean-test"
        assert record.backend == "channel-means" and record.device_in_use == "numpy"
        assert record.run_id == summary.run_id
        scenario_dir = tmp_path / "mean-test" / "resnet50" / record.scenario
        on_disk = read_record(scenario_dir / "records" / f"{record.mode}.json")
        assert on_disk.status == record.status and on_disk.run_id == summary.run_id
    accuracy = next(r for r in summary.records if r.mode == "accuracy")
    assert accuracy.accuracy is not None and accuracy.accuracy.total == 24
    assert events.seen[:2] == ["started", "prepared"]
    assert events.seen[2:] == [f"record {r.scenario} {r.mode}" for r in summary.records]
    saved = (tmp_path / "mean-test" / "resnet50" / "Offline" / "run_spec.json").read_text()
    assert '"kind": "mean-test"' in saved and '"scale": 2.0' in saved


def test_an_unknown_sut_kind_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownPluginError) as caught:
        RunSpec(sut={"kind": "no-such-kind"})
    assert "local" in (caught.value.hint or "")


def test_a_catalog_passed_in_reaches_the_test_process(colour_imagenet: Path,
                                                     tmp_path: Path) -> None:
    base = load_catalog()
    card = base.model("resnet50").model_copy(update={"name": "resnet50-private"})
    catalog = Catalog({**{c.name: c for c in base.models}, card.name: card},
                      {d.name: d for d in base.datasets},
                      {name: base.recipe(name) for name in _recipe_names(base)})
    spec = RunSpec(model="resnet50-private", backend="null", dataset_path=colour_imagenet,
                   results_dir=tmp_path, modes=["performance"], test_duration_ms=300,
                   preprocess_workers=1)
    summary = run_benchmark(spec, catalog=catalog)  # the subprocess launcher
    assert summary.ok, [r.reasons for r in summary.records]
    (record,) = summary.records
    assert record.model == "resnet50-private" and record.mlperf_model == "resnet50"
    assert (tmp_path / "null-cpu" / "resnet50-private" / "Offline" / "records"
            / "performance.json").is_file()


def _recipe_names(catalog: Catalog) -> set[str]:
    return {f.preprocess for c in catalog.models for f in c.formats}


def test_the_python_api_layers_the_card_defaults_as_the_cli_does() -> None:
    from_cli = resolve_spec([{"model": "resnet50-synthetic"}])
    planned = plan_run(RunSpec(model="resnet50-synthetic")).spec
    assert planned == from_cli
    assert planned.modes == from_cli.modes and [m.value for m in planned.modes] == [
        "performance"]
    # a card whose run_defaults differ from RunSpec's defaults, so the test can tell
    base = load_catalog()
    card = base.model("resnet50-synthetic")
    card = card.model_copy(update={"run_defaults": {
        "scenarios": ["SingleStream"], "sut": {"max_batch_size": 3}}})
    catalog = Catalog({**{c.name: c for c in base.models}, card.name: card},
                      {d.name: d for d in base.datasets},
                      {name: base.recipe(name) for name in _recipe_names(base)})
    spec = plan_run(RunSpec(model="resnet50-synthetic", backend="null"), catalog).spec
    assert spec.sut.max_batch_size == 3 and [s.value for s in spec.scenarios] == [
        "SingleStream"]
    assert spec == resolve_spec([{"model": "resnet50-synthetic", "backend": "null"}], catalog)
    # what the caller sets still wins over the card
    explicit = plan_run(RunSpec(model="resnet50-synthetic", backend="null",
                                sut={"max_batch_size": 5}), catalog).spec
    assert explicit.sut.max_batch_size == 5


def test_an_unknown_round_with_compliance_is_refused_before_any_run(tmp_path: Path) -> None:
    spec = RunSpec(model="resnet50", backend="null", results_dir=tmp_path / "results",
                   compliance=True, round="v9.9")
    with pytest.raises(ConfigError) as caught:
        plan_run(spec)
    assert "round" in caught.value.message and "v6.1" in (caught.value.hint or "")
    assert not (tmp_path / "results").exists()


def test_a_crashed_test_process_gets_a_record_with_the_mlperf_model_name(
        tmp_path: Path) -> None:
    from mlperf_pilot.engine.job import DatasetRef, ModelRef, TestJob
    from mlperf_pilot.engine.launch import _crashed_record

    catalog = load_catalog()
    card = catalog.model("resnet50-synthetic")
    fmt = card.format(None)
    job = TestJob(
        run_id="r1", system="null-cpu", scenario="Offline", mode="performance",
        model=ModelRef(name=card.name, mlperf_model=card.mlperf_model, fmt=fmt,
                       recipe=catalog.recipe(fmt.preprocess),
                       performance_sample_count=8, accuracy_metric="top1"),
        sut={"backend": "null"}, scenario_root=tmp_path, user_conf="",
        dataset=DatasetRef(folder=tmp_path, count=1, sample_shape=(1,), dtype="float32",
                           labels=[0], library="pillow"))
    stderr = tmp_path / "performance.stderr.txt"
    stderr.write_text("Fatal Python error: Segmentation fault\n")
    record = _crashed_record(job, -11, stderr)
    assert (record.model, record.mlperf_model) == ("resnet50-synthetic", "resnet50")
    assert record.status == "FAILED" and record.run_id == "r1"
    assert "killed by SIGSEGV: Fatal Python error" in record.reasons[0]
    assert read_record(job.record_file) == record

"""The ``local`` SUT kind: an in-process backend runs the model file on this machine.

plan: the backend (the card's default unless asked), the card format it prefers, the
device; prepare: the model file (assets.models.resolve_model: --model-path, a
registered file, the cache, a build, a verified download), loaded once to prove it
works on real data, its outputs checked against the card's postprocess and timed;
open: the model loaded in the test process as one LoadGen test's :class:`LocalSut`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.assets.file_formats import detect_file_format, kind_words
from mlperf_pilot.backends import backend_class
from mlperf_pilot.backends.base import Backend
from mlperf_pilot.backends.load import load_model
from mlperf_pilot.catalog.cards import ModelCard, ModelFormat
from mlperf_pilot.config.sut import LocalSutConfig
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.sut.kind import PrepareContext, PreparedSut, ResolvedSut, SutKind, SutPlan
from mlperf_pilot.vocab import Device, Scenario

if TYPE_CHECKING:
    from mlperf_pilot.catalog import Catalog
    from mlperf_pilot.config.spec import RunSpec
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.engine.job import TestJob
    from mlperf_pilot.sut.local import LocalSut


class LocalKind(SutKind):
    name = "local"
    config = LocalSutConfig

    @classmethod
    def plan(cls, spec: RunSpec, card: ModelCard, catalog: Catalog) -> SutPlan:
        sut = _local(spec.sut)
        backend_name = sut.backend or card.default_backend
        backend = backend_class(backend_name)
        fmt = choose_format(card, backend, sut.model_format)
        if fmt.format not in backend.formats:
            usable = [f.id for f in card.formats if f.format in backend.formats]
            raise ConfigError(
                f"the {backend_name} backend cannot run {card.name} format {fmt.id} "
                f"({fmt.format})",
                hint=f"use --model-format {usable[0]}" if usable else
                f"choose a backend for {fmt.format} models",
            )
        if sut.device not in backend.devices:
            raise ConfigError(
                f"the {backend_name} backend does not support --device {sut.device.value}",
                hint=f"supported: {', '.join(d.value for d in backend.devices)}",
            )
        if sut.model_path is not None and not Path(sut.model_path).expanduser().exists():
            raise ConfigError(
                f"model file {sut.model_path} does not exist",
                hint="check --model-path, or leave it out to use the catalog's copy",
            )
        if sut.model_path is not None and backend.needs_model:
            _check_file_format(Path(sut.model_path).expanduser(), card, fmt, backend_name,
                               backend, format_given=sut.model_format is not None)
        return SutPlan(
            kind=cls.name, fmt=fmt, label=f"{backend_name}/{sut.device.value}",
            system=f"{backend_name}-{sut.device.value}",
            parallel=backend.thread_safe and sut.device is Device.CPU,
            details={"backend": backend_name},
        )

    @classmethod
    def resolve(cls, spec: RunSpec, plan: SutPlan, card: ModelCard, *, cache: Any,
                progress: Any, transport: Any = None) -> ResolvedSut:
        from mlperf_pilot.assets.models import resolve_model

        sut = _local(spec.sut)
        backend_name = plan.details["backend"]
        if not backend_class(backend_name).needs_model:  # e.g. the null backend
            model_path, source = sut.model_path, f"none ({backend_name} backend)"
            verified = None
        else:
            found = resolve_model(card, plan.fmt, sut.model_path, cache, transport=transport,
                                  progress=progress, sha256=sut.model_sha256,
                                  allow_unverified=spec.allow_unverified_download)
            model_path = found.path
            source = ("cached " if found.from_cache else "") + found.source
            verified = found.verified
        return ResolvedSut(config=sut.model_copy(update={
            "backend": backend_name, "model_format": plan.fmt.id, "model_path": model_path}),
            source=source, model_verified=verified)

    @classmethod
    def prepare(cls, ctx: PrepareContext) -> PreparedSut:
        from mlperf_pilot.decoders import Geometry, OutputMismatchError, create_decoder, output_fix
        from mlperf_pilot.sut.warmup import measure_speed

        sut = _local(ctx.resolved.config)
        backend_name, model_path = sut.backend, sut.model_path
        assert backend_name is not None
        fmt = ctx.plan.fmt
        with ctx.progress.task(f"loading model on {ctx.plan.label}"):
            backend = load_model(backend_name, fmt, model_path, device=sut.device,
                                 threads=ctx.threads)
        device_in_use = backend.device_in_use  # before close(): a closed one says "not loaded"
        try:
            max_batch = _max_batch(sut, backend)
            with ctx.progress.task("warm-up"):
                decoder = create_decoder(fmt.postprocess,
                                         Geometry.of(ctx.recipe, ctx.dataset.image_hw))
                estimates = measure_speed(backend, decoder, ctx.dataset, max_batch,
                                          check_outputs=type(backend).needs_model)
        except OutputMismatchError as exc:
            raise OutputMismatchError(exc.message, output_fix(exc, ctx.card, fmt),
                                      fits=exc.fits) from exc
        finally:
            backend.close()
        return PreparedSut(
            config=sut, max_batch_size=max_batch, estimates=estimates,
            name=backend_name, version=type(backend).version(),
            device_in_use=device_in_use,
            model_path=str(model_path) if model_path else None,
            model_source=ctx.resolved.source, model_verified=ctx.resolved.model_verified,
        )

    @classmethod
    def open(cls, job: TestJob, store: SampleStore, decoder: Decoder) -> LocalSut:
        from mlperf_pilot.sut.local import LocalSut
        from mlperf_pilot.sut.warmup import warm_up

        sut = _local(job.sut)
        assert sut.backend is not None  # resolved by prepare
        backend = load_model(sut.backend, job.model.fmt, sut.model_path, device=sut.device,
                             threads=sut.threads, spin_wait=sut.spin_for(job.scenario))
        try:
            local = LocalSut(backend, store, decoder, sut)
            # the batch sizes the test will run: SingleStream only ever runs one sample
            largest = 1 if job.scenario is Scenario.SINGLE_STREAM else local.max_batch_size
            warm_up(backend, store.dataset, largest)
        except BaseException:
            backend.close()
            raise
        return local


def _check_file_format(path: Path, card: ModelCard, fmt: ModelFormat, backend_name: str,
                       backend: type[Backend], *, format_given: bool) -> None:
    """Refuse a --model-path whose real format is not the one the run would read it as
    (``--backend tensorflow --model-path x.onnx``: a kind of file the backend cannot
    read), before anything is loaded."""
    found = detect_file_format(path)
    # a file the backend reads by itself is its business (OpenCV reads Caffe, TensorFlow
    # and darknet files under the card's ONNX format; OpenVINO reads ONNX): the warm-up
    # proves it answers what the card's postprocess reads
    if found is None or found == fmt.format or found in backend.formats:
        return
    what = kind_words(found)
    fixes = []
    readers = _backends_reading(found)
    if readers:
        fixes.append(f"--backend {readers[0]}" + (
            f" (or {', '.join(readers[1:])})" if readers[1:] else ""))
    ids = [f.id for f in card.formats if f.format == found]
    if ids and readers and format_given:  # else the backend picks that format itself
        fixes[-1] += f" and --model-format {ids[0]}"
    fix = f"run it with {fixes[0]}, or give" if fixes else "give"
    raise ConfigError(
        f"--model-path {path} is {what}, but the {backend_name} backend would read it as "
        f"{card.name} format {fmt.id} ({fmt.format})",
        hint=f"{fix} --model-path a file in the {fmt.format} format",
    )


def _backends_reading(kind: str) -> list[str]:
    """The installed-or-not backends whose formats include ``kind`` (preferred first)."""
    from mlperf_pilot.backends import backend_names
    from mlperf_pilot.errors import MlperfPilotError

    readers: list[tuple[int, str]] = []
    for name in backend_names():
        try:
            cls = backend_class(name)
        except MlperfPilotError:
            continue
        if cls.needs_model and kind in cls.formats:
            readers.append((cls.formats.index(kind), name))
    return [name for _, name in sorted(readers)]


def _local(config: object) -> LocalSutConfig:
    assert isinstance(config, LocalSutConfig), config
    return config


def _max_batch(sut: LocalSutConfig, backend: Backend) -> int:
    fixed = backend.fixed_batch_size
    return min(sut.max_batch_size, fixed) if fixed else sut.max_batch_size


def choose_format(card: ModelCard, backend: type[Backend], requested: str | None
                  ) -> ModelFormat:
    """The format asked for; else, in the backend's order of preference, the card's
    default format when it is of that kind, or the card's first format of that kind
    (``--backend openvino`` picks the IR the card converts to, before the ONNX file
    OpenVINO also reads)."""
    if requested is not None:
        return card.format(requested)
    default = card.format(None)
    for kind in backend.formats:
        if default.format == kind:
            return default
        for fmt in card.formats:
            if fmt.format == kind:
                return fmt
    return default  # plan refuses it with the usable choices


__all__ = ["LocalKind", "choose_format"]

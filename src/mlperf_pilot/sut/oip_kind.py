"""The ``oip`` SUT kind: a model server that speaks the Open Inference Protocol v2,
benchmarked over the network (``run --sut oip --endpoint URL``).

plan: the endpoint is an http(s) URL, the card format whose preprocessing, tensor names
and decoding the run uses (``--model-format``, else the card's default), no I/O;
resolve: nothing local to find (no model file is loaded here), only the names settled;
prepare: the server live and ready (retried up to ``ready_timeout_s``), the model's
metadata checked against the card format (a missing tensor, another datatype or shape is
a one-line ConfigError naming the tensor), then a warm-up over the network on real
preprocessed samples for the estimates; open: the pooled client and the
:class:`~mlperf_pilot.sut.oip.OipSut` of one LoadGen test, from the job alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.config.sut import OipSutConfig, SutConfig
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.sut.kind import PrepareContext, PreparedSut, ResolvedSut, SutKind, SutPlan
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.catalog import Catalog, ModelCard
    from mlperf_pilot.catalog.cards import ModelFormat
    from mlperf_pilot.config.spec import RunSpec
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.engine.job import TestJob
    from mlperf_pilot.oip.client import OipClient
    from mlperf_pilot.sut.oip import OipPredictor, OipSut

_FIX_FORMAT = ("serve the card's model, or give --model-format a card format whose tensors "
               "the server's model has")


class OipKind(SutKind):
    name = "oip"
    config = OipSutConfig

    @classmethod
    def plan(cls, spec: RunSpec, card: ModelCard, catalog: Catalog) -> SutPlan:
        sut = _oip(spec.sut)
        if sut.endpoint is None:
            raise ConfigError("--sut oip needs the address of the server",
                              hint="give --endpoint http://HOST:PORT (e.g. the one "
                              "`mlperf-pilot serve` prints)")
        fmt = card.format(sut.model_format)
        if len(fmt.inputs) != 1:
            raise ConfigError(
                f"{card.name} format {fmt.id} has {len(fmt.inputs)} inputs; the oip SUT "
                "sends one (the preprocessed sample)",
                hint="choose a model whose format has one input")
        if sut.token_file is not None and not Path(sut.token_file).expanduser().is_file():
            raise ConfigError(f"token file {sut.token_file} does not exist",
                              hint="give --token-file the file holding the server's token")
        remote = sut.remote_model or card.name
        return SutPlan(kind=cls.name, fmt=fmt, label=f"oip {sut.endpoint} ({remote})",
                       system=sut.default_system_name(), parallel=True,
                       details={"remote_model": remote})

    @classmethod
    def resolve(cls, spec: RunSpec, plan: SutPlan, card: ModelCard, *, cache: Any,
                progress: Any, transport: Any = None) -> ResolvedSut:
        sut = _oip(spec.sut)
        remote = plan.details["remote_model"]
        update: dict[str, Any] = {"model_format": plan.fmt.id, "remote_model": remote}
        if sut.token_file is not None:  # the test processes read it wherever they run
            update["token_file"] = Path(sut.token_file).expanduser().resolve()
        return ResolvedSut(config=sut.model_copy(update=update),
                           source=f"served by {sut.endpoint} as {remote!r}", model_verified=None)

    @classmethod
    def prepare(cls, ctx: PrepareContext) -> PreparedSut:
        from mlperf_pilot.decoders import Geometry, OutputMismatchError, create_decoder, output_fix
        from mlperf_pilot.sut.oip import remote_device, server_name, server_version
        from mlperf_pilot.sut.warmup import measure_speed

        sut = _oip(ctx.resolved.config)
        fmt = ctx.plan.fmt
        client = build_client(sut, concurrency=1)
        try:
            with ctx.progress.task(f"waiting for the server at {sut.endpoint}"):
                client.wait_ready(sut.ready_timeout_s)
            server = client.server_metadata()
            protocol, notes = choose_protocol(sut.protocol, server)
            client.use_protocol(protocol)
            sut = sut.model_copy(update={"protocol": protocol})
            metadata = client.model_metadata()
            fixed, checked = check_metadata(metadata, fmt, str(sut.remote_model))
            notes = (*notes, *checked)
            predictor = make_predictor(client, sut, fmt, fixed)
            max_batch = min(sut.max_batch_size, fixed) if fixed else sut.max_batch_size
            with ctx.progress.task("warm-up over the network"):
                decoder = create_decoder(fmt.postprocess,
                                         Geometry.of(ctx.recipe, ctx.dataset.image_hw))
                estimates = measure_speed(predictor, decoder, ctx.dataset, max_batch)
        except OutputMismatchError as exc:
            raise OutputMismatchError(exc.message, output_fix(exc, ctx.card, fmt),
                                      fits=exc.fits) from exc
        finally:
            client.close()
        platform = metadata.get("platform")
        if platform:
            notes = (*notes, f"the server runs {sut.remote_model!r} on platform {platform}")
        return PreparedSut(
            config=sut.model_copy(update={"max_batch_size": max_batch}),
            max_batch_size=max_batch, estimates=estimates,
            name=server_name(server), version=server_version(server),
            device_in_use=remote_device(str(sut.endpoint)), model_path=None,
            model_source=ctx.resolved.source, model_verified=None, notes=notes)

    @classmethod
    def open(cls, job: TestJob, store: SampleStore, decoder: Decoder) -> OipSut:
        from mlperf_pilot.sut.oip import OipSut
        from mlperf_pilot.sut.warmup import warm_up

        sut = _oip(job.sut)
        client = build_client(sut, concurrency=sut.workers or 1)
        try:
            server = client.server_metadata()
            metadata = client.model_metadata()
            fixed, _ = check_metadata(metadata, job.model.fmt, str(sut.remote_model))
            predictor = make_predictor(client, sut, job.model.fmt, fixed)
            platform = metadata.get("platform")
            remote = OipSut(predictor, store, decoder, sut, server=server,
                            platform=str(platform) if platform else None)
            # the batch sizes the test will run: SingleStream only ever runs one sample
            largest = 1 if job.scenario is Scenario.SINGLE_STREAM else remote.max_batch_size
            warm_up(predictor, store.dataset, largest)
        except BaseException:
            client.close()
            raise
        return remote

    @classmethod
    def scenario_config_of(cls, config: SutConfig, scenario: Scenario, cores: int,
                           parallel: bool) -> SutConfig:
        """Requests in flight for one scenario, as both ``workers`` (the batcher's
        threads) and ``concurrency`` (what the record and the client's pool say)."""
        workers, _ = config.layout(scenario, cores, parallel=parallel)
        return config.model_copy(update={"workers": workers, "concurrency": workers})


BINARY_EXTENSION = "binary_tensor_data"


def choose_protocol(asked: str, server: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The tensor encoding a run uses: ``asked``, or for ``auto`` binary when the
    server's metadata lists the binary tensor data extension, else JSON (and a note)."""
    extensions = server.get("extensions")
    listed = isinstance(extensions, list) and BINARY_EXTENSION in extensions
    if asked != "auto":
        return asked, ()
    if listed:
        return "binary", ()
    return "json", (f"the server lists no {BINARY_EXTENSION} extension (GET /v2): tensors "
                    "travel as JSON, which costs far more than binary data (--protocol "
                    "binary forces it)",)


def build_client(sut: OipSutConfig, *, concurrency: int) -> OipClient:
    """The pooled client of ``sut`` (the token read now, from its file or the
    environment)."""
    from mlperf_pilot.oip.client import OipClient, read_token

    assert sut.endpoint is not None  # plan refuses a config without one
    # "auto" is resolved by prepare (from the server's metadata); binary until then
    protocol = "binary" if sut.protocol == "auto" else sut.protocol
    return OipClient(sut.endpoint, model=sut.remote_model, token=read_token(sut.token_file),
                     concurrency=concurrency, timeout_s=sut.request_timeout_ms / 1000.0,
                     protocol=protocol, http2=sut.http2)


def make_predictor(client: OipClient, sut: OipSutConfig, fmt: ModelFormat,
                   fixed_batch_size: int | None) -> OipPredictor:
    import numpy as np

    from mlperf_pilot.sut.oip import OipPredictor

    spec = fmt.inputs[0]
    return OipPredictor(client, model=str(sut.remote_model), input_name=spec.name,
                        input_dtype=np.dtype(spec.dtype), outputs=fmt.postprocess.outputs,
                        fixed_batch_size=fixed_batch_size)


def check_metadata(metadata: dict[str, Any], fmt: ModelFormat, model: str
                   ) -> tuple[int | None, tuple[str, ...]]:
    """The server's model metadata against the card format: every input the card sends
    and every output its postprocess reads, with the card's datatype and a compatible
    shape (a -1 or named dimension matches any size). -> (the batch size the server
    fixes, or None; notes). A mismatch is a one-line ConfigError naming the tensor."""
    from mlperf_pilot.oip.protocol import datatype_of

    inputs, outputs = metadata.get("inputs"), metadata.get("outputs")
    if not inputs and not outputs:
        return None, (f"the server does not describe the tensors of {model!r}: names, "
                      "shapes and datatypes not checked before the warm-up",)
    where = f"the server's model {model!r}"
    fixed: int | None = None
    served = _by_name(inputs, "input", where)
    for spec in fmt.inputs:
        entry = served.get(spec.name)
        if entry is None:
            have = ", ".join(served) or "none"
            raise ConfigError(f"{where} has no input {spec.name!r} (its inputs: {have}); "
                              f"the card's format {fmt.id} sends {spec.name!r}",
                              hint=_FIX_FORMAT)
        want = datatype_of(spec.dtype)
        if entry.get("datatype") != want:
            raise ConfigError(f"{where} takes input {spec.name!r} as "
                              f"{entry.get('datatype')}, the card's format {fmt.id} sends "
                              f"{want}", hint=_FIX_FORMAT)
        shape = entry.get("shape")
        if isinstance(shape, list) and not _shape_fits(shape, spec.shape):
            raise ConfigError(f"{where} takes input {spec.name!r} of shape {shape}, the "
                              f"card's format {fmt.id} sends {list(spec.shape)}",
                              hint=_FIX_FORMAT)
        if isinstance(shape, list) and shape and isinstance(shape[0], int) and shape[0] > 0:
            fixed = shape[0] if fixed is None else min(fixed, shape[0])
    answered = _by_name(outputs, "output", where)
    for name in fmt.postprocess.outputs:
        if name not in answered:
            have = ", ".join(answered) or "none"
            raise ConfigError(f"{where} has no output {name!r} (its outputs: {have}); the "
                              f"card's postprocess reads {name!r}", hint=_FIX_FORMAT)
    return fixed, ()


def _by_name(entries: Any, kind: str, where: str) -> dict[str, dict[str, Any]]:
    if entries is None:
        return {}
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries):
        from mlperf_pilot.errors import SutError

        raise SutError(f"{where}: the metadata's {kind}s are not a list of named tensors",
                       hint="the server does not follow the Open Inference Protocol v2")
    return {e["name"]: e for e in entries}


def _shape_fits(served: list[Any], card: tuple[int | str, ...]) -> bool:
    if len(served) != len(card):
        return False
    for have, want in zip(served, card, strict=True):
        if not isinstance(want, int) or want < 0:  # dynamic on the card's side
            continue
        if isinstance(have, int) and have >= 0 and have != want:
            return False
    return True


def _oip(config: object) -> OipSutConfig:
    assert isinstance(config, OipSutConfig), config
    return config


__all__ = ["BINARY_EXTENSION", "OipKind", "build_client", "check_metadata", "choose_protocol",
           "make_predictor"]

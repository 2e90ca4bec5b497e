"""The ``serverless`` SUT kind: functions (AWS Lambda, or a local pool standing in for
it) answer request objects in an S3 bucket.

plan (no I/O): a bucket; the backend and card format the function runs, chosen as the
local kind chooses them (``LocalKind.plan`` on the same settings); boto3 installed.
resolve: the model file, as the local kind resolves it (``LocalKind.resolve``).
prepare (parent): credentials and the bucket (``Bucket.require``: a one-line ConfigError
naming a bucket that is not there, exit 2), the model file(s) and the preprocessed
samples uploaded once by checksum, the output queue (and for local functions the input
queue) subscribed to the bucket, then a warm-up through the real path (a request object,
a function, an output event) for the estimates. open (child, per LoadGen test): a fresh
run id, the local pool started (cold instances), the :class:`ServerlessSut`, warmed up
with one request per instance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf_pilot.config.sut import LocalSutConfig, ServerlessSutConfig, SutConfig
from mlperf_pilot.errors import ConfigError, MissingDependencyError
from mlperf_pilot.sut.kind import PrepareContext, PreparedSut, ResolvedSut, SutKind, SutPlan
from mlperf_pilot.sut.local_kind import LocalKind
from mlperf_pilot.vocab import Scenario

if TYPE_CHECKING:
    from mlperf_pilot.catalog import Catalog, ModelCard
    from mlperf_pilot.catalog.cards import ModelFormat
    from mlperf_pilot.config.spec import RunSpec
    from mlperf_pilot.datasets.qsl import SampleStore
    from mlperf_pilot.decoders.base import Decoder
    from mlperf_pilot.engine.job import TestJob
    from mlperf_pilot.serverless.aws import Aws
    from mlperf_pilot.serverless.bucket import Bucket, EventQueue
    from mlperf_pilot.serverless.local_functions import LocalFunctionPool
    from mlperf_pilot.sut.serverless import ServerlessSut

class ServerlessKind(SutKind):
    name = "serverless"
    config = ServerlessSutConfig

    @classmethod
    def plan(cls, spec: RunSpec, card: ModelCard, catalog: Catalog) -> SutPlan:
        sut = _serverless(spec.sut)
        if not sut.bucket:
            raise ConfigError("--sut serverless needs --bucket NAME",
                              hint="the bucket `mlperf-pilot serverless deploy --bucket NAME` "
                              "made (with --storage-endpoint URL for a local S3)")
        if importlib.util.find_spec("boto3") is None:
            raise MissingDependencyError("boto3", "serverless", "--sut serverless")
        local = LocalKind.plan(_as_local(spec, sut), card, catalog)
        backend = local.details["backend"]
        where = "local functions" if sut.functions == "local" else "AWS Lambda"
        return SutPlan(kind=cls.name, fmt=local.fmt,
                       label=f"{backend} on {where} ({sut.memory_mb} MB)",
                       system=sut.default_system_name(), parallel=True,
                       details={"backend": backend})

    @classmethod
    def resolve(cls, spec: RunSpec, plan: SutPlan, card: ModelCard, *, cache: Any,
                progress: Any, transport: Any = None) -> ResolvedSut:
        sut = _serverless(spec.sut)
        found = LocalKind.resolve(_as_local(spec, sut), plan, card, cache=cache,
                                  progress=progress, transport=transport)
        local = found.config
        assert isinstance(local, LocalSutConfig)
        return ResolvedSut(config=sut.model_copy(update={
            "backend": local.backend, "model_format": local.model_format,
            "model_path": local.model_path}), source=found.source,
            model_verified=found.model_verified)

    @classmethod
    def prepare(cls, ctx: PrepareContext) -> PreparedSut:
        from mlperf_pilot.decoders import Geometry, OutputMismatchError, create_decoder, output_fix
        from mlperf_pilot.serverless.bucket import Bucket
        from mlperf_pilot.serverless.package import model_files
        from mlperf_pilot.sut.warmup import measure_speed

        sut = _serverless(ctx.resolved.config)
        fmt = ctx.plan.fmt
        aws = make_aws(sut)
        bucket = Bucket(aws, str(sut.bucket), sut.prefix)
        with ctx.progress.task(f"checking s3://{sut.bucket}"):
            bucket.require()
            if sut.functions == "aws":
                require_function_trigger(bucket, sut.memory_mb)
        notes: list[str] = []
        with ctx.progress.task(f"uploading the model and samples to s3://{sut.bucket}"):
            model_key = None
            if sut.model_path is not None:
                keys, count = bucket.upload_model(model_files(Path(sut.model_path)))
                model_key = keys[0]
                notes.append(f"model in s3://{sut.bucket}/{model_key} ("
                             + ("uploaded" if count.uploaded else "already there") + ")")
            dataset = ctx.dataset
            dataset_key = dataset_key_of(dataset.folder)
            uploaded = bucket.upload_samples(
                dataset_key, ((i, dataset.read(i)) for i in range(dataset.count)))
            notes.append(f"{dataset.count} preprocessed samples in s3://{sut.bucket}/"
                         f"{sut.prefix}datasets/{dataset_key}/ ({len(uploaded.uploaded)} "
                         "uploaded now)")
            output_queue = bucket.ensure_output_queue()
            input_queue = bucket.ensure_local_input_queue() if sut.functions == "local" \
                else None
        config = sut.model_copy(update={
            "model_key": model_key, "dataset_key": dataset_key,
            "output_queue": output_queue.queue.url,
            "input_queue": input_queue.queue.url if input_queue is not None else None})
        version = backend_version(str(config.backend))
        with ctx.progress.task("warm-up through the bucket"):
            remote = open_sut(config, fmt, None, None, instances=1,
                              version=version, aws=aws, dataset=ctx.dataset)
            try:
                decoder = create_decoder(fmt.postprocess,
                                         Geometry.of(ctx.recipe, ctx.dataset.image_hw))
                estimates = measure_speed(_SampleZero(remote), decoder, ctx.dataset,
                                          config.max_batch_size)
                if remote.pool is not None:
                    notes.append("local functions: " + remote.pool.confinement.words())
            except OutputMismatchError as exc:
                raise OutputMismatchError(exc.message, output_fix(exc, ctx.card, fmt),
                                          fits=exc.fits) from exc
            finally:
                remote.close()
        where = "local functions" if config.functions == "local" else "AWS Lambda"
        return PreparedSut(
            config=config, max_batch_size=config.max_batch_size, estimates=estimates,
            name=str(config.backend), version=version,
            device_in_use=f"{where} ({config.memory_mb} MB)",
            model_path=str(config.model_path) if config.model_path else None,
            model_source=ctx.resolved.source, model_verified=ctx.resolved.model_verified,
            notes=tuple(notes))

    @classmethod
    def open(cls, job: TestJob, store: SampleStore, decoder: Decoder) -> ServerlessSut:
        sut = _serverless(job.sut)
        remote = open_sut(sut, job.model.fmt, store, decoder,
                          instances=sut.workers or 1,
                          version=backend_version(str(sut.backend)))
        try:
            # one request per instance at once: every instance's cold start happens here,
            # before LoadGen starts (SingleStream only ever sends one sample)
            sizes = [1] if job.scenario is Scenario.SINGLE_STREAM else [1, remote.max_batch_size]
            for size in sizes:
                with ThreadPoolExecutor(remote.workers) as pool:
                    list(pool.map(remote.call_arrays, [[0] * size] * remote.workers))
            remote.client.end_warmup()
        except BaseException:
            remote.close()
            raise
        return remote

    @classmethod
    def scenario_config_of(cls, config: SutConfig, scenario: Scenario, cores: int,
                           parallel: bool) -> SutConfig:
        """Requests in flight as both ``workers`` and ``concurrency``; the function's
        threads by its memory size."""
        workers, threads = config.layout(scenario, cores, parallel=parallel)
        return config.model_copy(update={"workers": workers, "concurrency": workers,
                                         "threads": threads})


class _SampleZero:
    """The warm-up's predictor: ``measure_speed`` times batches of sample 0 (rows
    repeated), so a batch of N rows is a request for sample 0, N times."""

    thread_safe = True
    fixed_batch_size = None

    def __init__(self, remote: ServerlessSut) -> None:
        self.remote = remote

    def predict(self, batch: Any) -> list[Any]:
        return self.remote.call_arrays([0] * len(batch))


def open_sut(config: ServerlessSutConfig, fmt: ModelFormat,
             store: SampleStore | None, decoder: Decoder | None, *, instances: int,
             version: str | None, aws: Aws | None = None, dataset: Any = None
             ) -> ServerlessSut:
    """A started :class:`ServerlessSut` for a fresh run id (its receiver, and for local
    functions its pool, running). Without a store (the parent's warm-up) it answers
    only :meth:`ServerlessSut.call_arrays`."""
    from mlperf_pilot.serverless.bucket import Bucket, new_run_id
    from mlperf_pilot.sut.serverless import FunctionClient, ServerlessSut

    aws = aws or make_aws(config)
    bucket = Bucket(aws, str(config.bucket), config.prefix)
    assert config.output_queue is not None and config.dataset_key is not None  # prepare's
    run_id = new_run_id(config.functions, config.memory_mb)
    client = FunctionClient(
        bucket, event_queue(aws, config.output_queue), run_id,
        dataset_key=config.dataset_key, outputs=fmt.postprocess.outputs,
        timeout_ms=config.request_timeout_ms,
        inline_bytes=int(config.inline_samples_mb * 1024 * 1024),
        what="local functions" if config.functions == "local"
        else f"the AWS function ({config.memory_mb} MB)")
    pool = None
    if config.functions == "local":
        pool = local_pool(config, bucket, aws, fmt, instances)
        pool.serve(run_id)
    remote = ServerlessSut(store or _NoStore(dataset), decoder or _NoDecoder(),  # type: ignore[arg-type]
                           config.model_copy(update={"workers": instances}), client,
                           pool=pool, version=version)
    try:
        client.start()
        if pool is not None:
            pool.start()
    except BaseException:
        remote.close()
        raise
    return remote


def local_pool(config: ServerlessSutConfig, bucket: Bucket, aws: Aws, fmt: ModelFormat,
               instances: int) -> LocalFunctionPool:
    from mlperf_pilot.serverless.local_functions import LocalFunctionPool

    assert config.input_queue is not None
    environment = function_environment(config, fmt)
    extra = [Path(config.function_code).resolve()] if config.function_code else []
    return LocalFunctionPool(
        bucket=bucket, events=event_queue(aws, config.input_queue), instances=instances,
        memory_mb=config.memory_mb, threads=config.function_threads(),
        environment=environment, function_name=f"mlperf-pilot-local-{config.memory_mb}",
        request_timeout_ms=config.request_timeout_ms, handler=config.function_handler,
        extra_code=extra)  # their stderr is this process's (a test's stderr.txt)


def function_environment(config: ServerlessSutConfig, fmt: ModelFormat) -> dict[str, str]:
    """The handler's settings (``mlperf_pilot_fn.handler``'s ``MLPERF_FN_*``): what the
    package knows (``package.function_environment``) plus the bucket, the model's key,
    the endpoint, the threads and the memory size. No secret among them."""
    from mlperf_pilot.serverless.package import function_environment as packaged

    main_file = config.model_key.rpartition("/")[2] if config.model_key else None
    environment = packaged(str(config.backend), fmt, main_file)
    environment.update({"MLPERF_FN_BUCKET": str(config.bucket),
                        "MLPERF_FN_THREADS": str(config.function_threads()),
                        "MLPERF_FN_MEMORY_MB": str(config.memory_mb)})
    if config.model_key:
        environment["MLPERF_FN_MODEL_KEY"] = config.model_key
    if config.storage_endpoint:
        environment["MLPERF_FN_S3_ENDPOINT"] = config.storage_endpoint
    if config.region:
        environment["AWS_DEFAULT_REGION"] = config.region
    return environment


def require_function_trigger(bucket: Bucket, memory_mb: int) -> None:
    """With AWS functions, a function of this memory size must be notified of the run's
    requests (``input/m<MB>-``, set by ``serverless deploy``); else every request would
    only time out."""
    from mlperf_pilot.serverless import messages
    from mlperf_pilot.serverless.bucket import run_id_prefix

    wanted = f"{bucket.prefix}{messages.INPUT}{run_id_prefix('aws', memory_mb)}"
    triggers = [n for n in bucket.notifications() if n.target == "function"]
    if not any(n.prefix == wanted for n in triggers):
        sizes = sorted(int(found.group(1)) for n in triggers
                       if (found := re.search(r"/m(\d+)-$", n.prefix)))
        have = f" (deployed: {', '.join(f'{s} MB' for s in sizes)})" if sizes else ""
        raise ConfigError(
            f"no function of {memory_mb} MB is triggered by s3://{bucket.name}/{wanted}"
            f"{have}",
            hint=f"deploy one: `mlperf-pilot serverless deploy --bucket {bucket.name} "
            f"--memory-mb {memory_mb} ...`, or run with --functions local")


def make_aws(config: ServerlessSutConfig) -> Aws:
    from mlperf_pilot.serverless.aws import Aws, AwsTarget

    return Aws(AwsTarget(region=config.region, endpoint_url=config.storage_endpoint,
                         max_pool_connections=max(32, 2 * (config.workers or 1) + 4)))


def event_queue(aws: Aws, url: str) -> EventQueue:
    from mlperf_pilot.errors import SutConnectionError
    from mlperf_pilot.serverless.bucket import EventQueue, Queue

    # during a run an endpoint that went away is the SUT's failure, not the user's setting
    return EventQueue(aws, Queue(name=url.rstrip("/").rpartition("/")[2], url=url, arn=""),
                      connection_error=SutConnectionError)


def dataset_key_of(folder: Path) -> str:
    """The samples' folder in the bucket: the preprocessed folder's name and a digest of
    its manifest (what was preprocessed, how), so two data sets never share one."""
    manifest = folder / "manifest.json"
    identity = manifest.read_bytes() if manifest.is_file() else str(folder).encode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "samples"
    return f"{name[:60]}-{hashlib.sha256(identity).hexdigest()[:12]}"


def backend_version(backend: str) -> str | None:
    from mlperf_pilot.backends import backend_class

    try:
        return backend_class(backend).version()
    except Exception:  # not installed here: the function has its own
        return None


class _NoStore:
    """The parent's warm-up has no sample store: it only calls ``call_arrays``, which
    reads the data set (``prepare``'s) when there is one."""

    class _Shape:  # shaped like SampleStore.dataset, for a warm-up without a data set
        sample_shape = (1,)
        dtype = "float32"

    def __init__(self, dataset: Any = None) -> None:
        self.dataset = dataset if dataset is not None else self._Shape()


class _NoDecoder:
    pass


def _as_local(spec: RunSpec, sut: ServerlessSutConfig) -> RunSpec:
    """The run as the local kind would see it: the function's backend and model file."""
    local = LocalSutConfig(backend=sut.backend, model_format=sut.model_format,
                           model_path=sut.model_path, model_sha256=sut.model_sha256,
                           max_batch_size=sut.max_batch_size)
    return spec.model_copy(update={"sut": local})


def _serverless(config: object) -> ServerlessSutConfig:
    assert isinstance(config, ServerlessSutConfig), config
    return config


__all__ = ["ServerlessKind", "dataset_key_of", "function_environment", "make_aws",
           "open_sut"]

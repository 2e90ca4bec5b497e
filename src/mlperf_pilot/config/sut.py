"""What a SUT kind is configured with: ``RunSpec.sut``, discriminated on ``kind``.

Every kind shares the batcher's settings (:class:`SutConfig`); a kind adds what belongs
to it. The built-in ``local`` kind (:class:`LocalSutConfig`) runs an in-process backend:
backend, device, model format and file, workers and threads live here. The built-in
``oip`` kind (:class:`OipSutConfig`) is a model server reached over the network (an
``endpoint`` without a ``kind`` implies it); the ``serverless`` kind
(:class:`ServerlessSutConfig`) functions reached through object storage. Other kinds come
from the SUT registry (``mlperf_pilot.sut.registry``, entry-point group
``mlperf_pilot.suts``): the kind's plugin names its config class, so a kind added by
another package validates exactly like a built-in one.

Old flat configs keep working: ``backend``, ``device``, ``model_format``,
``model_path`` and ``model_sha256`` at the top level of a layer are moved under
``sut`` (:func:`lift_legacy_keys`), layer by layer, so a later layer still wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


# the oip kind's requests in flight by scenario, when neither concurrency nor workers is
# given: SingleStream and MultiStream have one query out at a time; Offline keeps one
# request on the wire while the server computes another; Server's small batches arrive
# at random, several at once
OIP_CONCURRENCY = {Scenario.SINGLE_STREAM: 1, Scenario.MULTI_STREAM: 1, Scenario.OFFLINE: 2,
                   Scenario.SERVER: 4}
MAX_CONCURRENCY = 1024
TOKEN_ENV = "MLPERF_PILOT_TOKEN"  # the bearer token, when no token file is given


class RequestsSutConfig(SutConfig):
    """A kind whose workers are requests in flight to something that runs the model
    elsewhere (a server, functions): ``concurrency`` is the batcher's ``workers``; give
    either, or both agreeing; neither: by scenario (:data:`OIP_CONCURRENCY`)."""

    concurrency: int = Field(default=0, ge=0, le=MAX_CONCURRENCY)  # 0 = by scenario

    @model_validator(mode="after")
    def _one_concurrency(self) -> RequestsSutConfig:
        if self.workers and self.concurrency and self.workers != self.concurrency:
            raise ValueError(
                f"workers ({self.workers}) and concurrency ({self.concurrency}) are the same "
                f"thing for the {self.kind} kind (requests in flight): give one")
        return self

    def in_flight(self, scenario: Scenario) -> int:
        """The requests in flight for ``scenario``."""
        return self.concurrency or self.workers or OIP_CONCURRENCY.get(Scenario(scenario), 1)


class OipSutConfig(RequestsSutConfig):
    """A model server that speaks the Open Inference Protocol v2 (KServe v2 / Triton
    HTTP/REST), reached at ``endpoint``; the model card still gives the preprocessing,
    the tensor names and the decoding (``model_format``). No model file is loaded here.

    ``concurrency`` is the number of requests in flight, and that is the batcher's
    ``workers``: each worker thread sends one batch at a time and waits for its answer on
    the shared connection pool. Give either (``workers`` is taken as the concurrency);
    both, they must agree. The bearer token is never a setting: it is read from
    ``token_file``, else from the environment variable ``MLPERF_PILOT_TOKEN``, when the
    client is built, so it never lands in a job file, a record or the process list."""

    kind: Literal["oip"] = "oip"
    endpoint: str | None = None  # e.g. http://127.0.0.1:8000 (plan refuses None)
    remote_model: str | None = None  # the server's model name; None = the card's name
    token_file: Path | None = None
    request_timeout_ms: int = Field(default=10_000, ge=1, le=3_600_000)
    # binary = the binary tensor extension; auto = binary where the server lists it
    # (``GET /v2`` extensions), else json; prepare resolves auto before any test
    protocol: Literal["auto", "binary", "json"] = "auto"
    http2: bool = False
    model_format: str | None = None  # a card format id; None = the card's default
    # how long the parent waits for the server to be live and ready (retried)
    ready_timeout_s: float = Field(default=10.0, ge=0, le=3600)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint(value)

    @property
    def host(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.endpoint or "").hostname or "server"

    def default_system_name(self) -> str:
        return "oip-" + re.sub(r"[^A-Za-z0-9._-]+", "-", self.host).strip("-.")

    def layout(self, scenario: Scenario, cores: int, *, parallel: bool) -> tuple[int, int]:
        """(requests in flight, 0): ``concurrency`` (or ``workers``), else by scenario
        (:data:`OIP_CONCURRENCY`). The model runs on the server, so this process starts
        no intra-op threads (0): its worker threads mostly wait on the network, and
        the thread limits for local backends do not apply to them."""
        return self.in_flight(scenario), 0


# AWS Lambda gives one vCPU per 1,769 MB of memory; its memory sizes run 128 to 10,240 MB
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MEMORY_MB = (128, 10_240)


class ServerlessSutConfig(RequestsSutConfig):
    """Functions reached through object storage: every query (or batch of an Offline
    query) becomes a request object in the bucket's ``input/<run>/``, a function (AWS
    Lambda, or ``functions: local``, a pool of worker processes on this machine fed by
    the same S3 events) answers in ``output/<run>/``, and an SQS queue subscribed to
    ``output/`` tells the host (``mlperf_pilot.serverless.messages`` has the layout).

    ``concurrency`` is the requests in flight (the batcher's ``workers``, as for the oip
    kind; given both, they must agree) and, for local functions, the pool's instances.
    ``backend``/``model_format``/``model_path`` say what the function runs (the card's
    default unless given); ``threads`` its engine's threads (0: by the memory size's CPU
    share). No credentials here: boto3 finds them through its usual chain. The queue and
    key fields below ``prefix`` are resolved by prepare and carried to the test
    processes."""

    kind: Literal["serverless"] = "serverless"
    bucket: str | None = None  # plan refuses None
    storage_endpoint: str | None = None  # an S3-compatible endpoint URL (moto); None = AWS
    region: str | None = None  # None = boto3's chain, else us-east-1
    functions: Literal["aws", "local"] = "aws"
    memory_mb: int = Field(default=LAMBDA_MB_PER_VCPU, ge=LAMBDA_MEMORY_MB[0],
                           le=LAMBDA_MEMORY_MB[1])
    request_timeout_ms: int = Field(default=30_000, ge=1, le=900_000)  # Lambda's max 15 min
    prefix: str = Field(default="", pattern=r"^([A-Za-z0-9._-]+/)*$")  # e.g. "team-a/"
    function_name: str | None = None  # functions=aws: the deployed function, for the record
    backend: str | None = None  # what the function runs; None = the card's default
    model_format: str | None = None
    model_path: Path | None = None
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    threads: int = Field(default=0, ge=0)  # the function's engine threads; 0 = by memory
    # a batch of at most this many MB travels inside its request object (the function
    # skips the GETs of datasets/); larger batches, or 0, are read from datasets/
    inline_samples_mb: float = Field(default=8.0, ge=0, le=1024)
    # functions=local: the handler the instances run, and a folder (or a function.zip)
    # to import it from before the packaged function's tree; default the tool's function
    function_handler: str = Field(default="mlperf_pilot_fn.handler.handler",
                                  pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    function_code: Path | None = None
    # resolved by prepare (the test processes read them from the job)
    model_key: str | None = None  # the model object (models/<sha256>/<file>)
    dataset_key: str | None = None  # the preprocessed samples (datasets/<key>/)
    output_queue: str | None = None  # the SQS queue URL subscribed to output/
    input_queue: str | None = None  # functions=local: the queue subscribed to input/

    @field_validator("storage_endpoint")
    @classmethod
    def _storage_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_endpoint(value)

    @property
    def vcpus(self) -> float:
        """The CPU share Lambda gives this memory size."""
        return self.memory_mb / LAMBDA_MB_PER_VCPU

    def function_threads(self) -> int:
        """The function's engine threads: ``threads``, else its CPU share rounded up."""
        import math

        return self.threads or max(1, math.ceil(self.vcpus - 1e-9))

    def default_system_name(self) -> str:
        return f"serverless-{self.functions}-{self.memory_mb}mb"

    def layout(self, scenario: Scenario, cores: int, *, parallel: bool) -> tuple[int, int]:
        """(requests in flight, the function's threads): ``concurrency`` (or ``workers``),
        else by scenario as for the oip kind (:data:`OIP_CONCURRENCY`)."""
        return self.in_flight(scenario), self.function_threads()


def check_endpoint(value: str) -> str:
    """An http(s) URL with a host (a path prefix allowed), without the trailing '/'."""
    from urllib.parse import urlsplit

    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # a bad port raises here
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. "
                         "http://127.0.0.1:8000")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or a fragment")
    if parts.username or parts.password:
        raise ValueError("must not hold credentials (give --token-file)")
    del port
    return text.rstrip("/")


def read_token(token_file: Path | None) -> str | None:
    """The bearer token, for the oip client and ``mlperf-pilot serve`` alike:
    ``token_file``'s text, else ``MLPERF_PILOT_TOKEN`` (both stripped), else None (no
    token). ConfigError for a file that cannot be read or is empty."""
    if token_file is None:
        return os.environ.get(TOKEN_ENV, "").strip() or None
    from mlperf_pilot.errors import ConfigError

    path = Path(token_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"token file {token_file} cannot be read ({why})",
                          hint="give --token-file a readable file holding the token") from None
    token = text.strip()
    if not token:
        raise ConfigError(f"token file {token_file} is empty",
                          hint="write the server's bearer token into it, on one line")
    return token


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
        # an endpoint without a kind means a server: ``--endpoint URL`` implies --sut oip
        kind = value.get("kind", "oip" if value.get("endpoint") is not None else DEFAULT_KIND)
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


__all__ = [
    "DEFAULT_KIND",
    "LAMBDA_MB_PER_VCPU",
    "LAMBDA_MEMORY_MB",
    "LEGACY_SUT_KEYS",
    "MAX_CONCURRENCY",
    "OIP_CONCURRENCY",
    "TOKEN_ENV",
    "LocalSutConfig",
    "OipSutConfig",
    "RequestsSutConfig",
    "ServerlessSutConfig",
    "SutConfig",
    "check_endpoint",
    "known_sut_fields",
    "lift_legacy_keys",
    "parse_sut",
    "read_token",
    "sut_config_class",
]

"""The command-line flags of ``run`` and ``compliance``, as data.

Each :class:`Flag` names the RunSpec setting it sets (a dotted key, as ``--set`` spells
it), its value type, its help and the commands that carry it. The CLI builds its click
options from :data:`RUN_FLAGS`, :func:`flags_to_layer` turns the values given into the
flag layer of :func:`~mlperf_pilot.config.layering.build_run_spec`, and
:func:`flags_markdown` renders the README's table, so the help, the README and anything
that writes command lines for a run (pipelines) read one table. No click here: this is
configuration, the CLI applies it.

``python -m mlperf_pilot.config.flags`` prints the README table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlperf_pilot.submission.rounds import DEFAULT_ROUND

FlagType = Literal["text", "int", "float", "path", "choice", "flag"]
Command = Literal["run", "compliance"]
BOTH: tuple[Command, ...] = ("run", "compliance")
RUN_ONLY: tuple[Command, ...] = ("run",)


@dataclass(frozen=True)
class Flag:
    """One flag: ``name`` (``--model-path``) sets ``key`` (``sut.model_path``)."""

    name: str
    key: str
    type: FlagType
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    # repeatable: the values given form a list (``--scenario Offline --scenario Server``)
    multiple: bool = False
    commands: tuple[Command, ...] = BOTH
    # the choices a command accepts when it takes fewer than ``choices``
    command_choices: tuple[tuple[Command, tuple[str, ...]], ...] = ()
    # the README's longer meaning; None = ``help``
    doc: str | None = None

    @property
    def dest(self) -> str:
        """The parameter name a parsed value comes under: ``--model-path`` -> model_path."""
        return self.name.lstrip("-").replace("-", "_")

    def choices_for(self, command: Command) -> tuple[str, ...]:
        return dict(self.command_choices).get(command, self.choices)


_SCENARIOS = ("SingleStream, MultiStream, Server, Offline or all (repeat or comma-separate; "
              "default: the card's, else Offline; the demo: Offline, SingleStream).")

RUN_FLAGS: tuple[Flag, ...] = (
    Flag("--model", "model", "text",
         "Catalog model name (`mlperf-pilot list models`; default: the demo, "
         "efficientnet-lite0-demo).",
         metavar="NAME", doc="a catalog model (`mlperf-pilot list models`); default the demo"),
    Flag("--sut", "sut.kind", "text",
         "Kind of system under test (default local: a backend in this process).",
         metavar="KIND",
         doc="the kind of system under test; `local` (default): a backend runs the model "
         "file in this process; `oip`: an Open Inference Protocol v2 server at "
         "`--endpoint`; `serverless`: functions through object storage at `--bucket`"),
    Flag("--backend", "sut.backend", "text",
         "Backend name (`mlperf-pilot list backends`; default: the model card's, "
         "onnxruntime for the demo).",
         metavar="NAME",
         doc="backend (`mlperf-pilot list backends`); default the card's"),
    Flag("--device", "sut.device", "text", "cpu or cuda (gpu is an alias of cuda; default cpu).",
         metavar="DEVICE", doc="`cpu` (default), `cuda`; `gpu` = `cuda`"),
    Flag("--model-format", "sut.model_format", "text",
         "A format id of the model card, e.g. onnx-opset8 (default: the card's format the "
         "backend reads).", metavar="ID",
         doc="one of the card's formats, e.g. `onnx-opset8` (default: the card's)"),
    Flag("--model-path", "sut.model_path", "path",
         "Use this model file (default: the registered, cached, built or downloaded one).",
         metavar="FILE",
         doc="use your own model file (else the cached, built or downloaded one)"),
    Flag("--endpoint", "sut.endpoint", "text",
         "URL of an Open Inference Protocol v2 server to benchmark (implies --sut oip).",
         metavar="URL",
         doc="the http(s) URL of an Open Inference Protocol v2 server (`mlperf-pilot "
         "serve`, MLServer, KServe, Triton); implies `--sut oip`, refused with another "
         "`--sut`"),
    Flag("--remote-model", "sut.remote_model", "text",
         "The server's name of the model (--sut oip; default: the catalog name).",
         metavar="NAME", doc="`--sut oip`: the server's name of the model (default: the "
         "catalog model's name)"),
    Flag("--token-file", "sut.token_file", "path",
         "File holding the server's bearer token (--sut oip; else MLPERF_PILOT_TOKEN).",
         metavar="FILE",
         doc="`--sut oip`: a file holding the server's bearer token (else the environment "
         "variable `MLPERF_PILOT_TOKEN`); the token itself is never a flag, nor in any "
         "record, job file or log"),
    Flag("--concurrency", "sut.concurrency", "int",
         "Requests in flight (--sut oip or serverless; default by scenario: 1, Offline 2, "
         "Server 4).",
         metavar="N",
         doc="`--sut oip` or `serverless`: requests in flight, each a batch of up to "
         "`--max-batch-size` (the SUT's worker threads; default: SingleStream/MultiStream "
         "1, Offline 2, Server 4); with `--functions local` also the pool's instances"),
    Flag("--request-timeout-ms", "sut.request_timeout_ms", "int",
         "Per-request timeout (--sut oip, default 10000 ms; --sut serverless, default "
         "30000 ms).", metavar="MS",
         doc="`--sut oip`: how long connecting, sending or waiting for an answer may take "
         "(default 10000); `--sut serverless`: from writing the request object to its "
         "output's event (default 30000); a request past it fails its samples "
         "(SutTimeoutError) and the run is INVALID"),
    Flag("--bucket", "sut.bucket", "text",
         "The S3 bucket the functions read and write (--sut serverless).", metavar="NAME",
         doc="`--sut serverless`: the bucket of requests, outputs, the model and the "
         "samples (created by `serverless deploy`; a bucket that does not exist is refused)"),
    Flag("--storage-endpoint", "sut.storage_endpoint", "text",
         "An S3-compatible endpoint URL, e.g. a local moto server (--sut serverless; "
         "default: AWS).", metavar="URL",
         doc="`--sut serverless`: an S3-compatible endpoint (and SQS at the same URL), e.g. "
         "`http://127.0.0.1:5000` for moto; default AWS's"),
    Flag("--functions", "sut.functions", "choice",
         "Who answers (--sut serverless): aws (deployed Lambda functions, default) or "
         "local (a pool of worker processes here).", choices=("aws", "local"),
         doc="`--sut serverless`: `aws` (default: the deployed Lambda function, triggered by "
         "the bucket) or `local` (a pool of `--concurrency` worker processes on this machine "
         "running the same handler, fed by the same S3 events through SQS)"),
    Flag("--memory-mb", "sut.memory_mb", "int",
         "The function's memory size (--sut serverless; default 1769, one vCPU).",
         metavar="MB",
         doc="`--sut serverless`: the function's memory size, 128 to 10240 (default 1769: "
         "one vCPU); local functions get it as a memory limit and a CPU share"),
    Flag("--inline-samples-mb", "sut.inline_samples_mb", "float",
         "Send a batch of at most this many MB inside its request object (--sut "
         "serverless; default 8, 0: never).", metavar="MB",
         doc="`--sut serverless`: a batch of preprocessed samples up to this size (default "
         "8 MB) travels inside its request object, so the function reads no `datasets/` "
         "object; bigger batches, or any with 0, are read from `datasets/` (uploaded once)"),
    Flag("--protocol", "sut.protocol", "choice",
         "Tensor encoding (--sut oip): auto (default: binary where the server lists the "
         "binary tensor extension, else json), binary or json.",
         choices=("auto", "binary", "json"),
         doc="`--sut oip`: `auto` (default: `binary` when the server's `GET /v2` lists the "
         "`binary_tensor_data` extension, else `json`), `binary` (the binary tensor data "
         "extension both ways) or `json` (tensors as JSON lists)"),
    Flag("--http2", "sut.http2", "flag", "Talk HTTP/2 to the server (--sut oip).",
         doc="`--sut oip`: HTTP/2 (needs the `h2` package: `pip install 'httpx[http2]'`)"),
    Flag("--dataset", "dataset", "text", "Catalog dataset name (default: the model card's).",
         metavar="NAME", commands=RUN_ONLY,
         doc="a catalog dataset (`mlperf-pilot list datasets`); default the model card's"),
    Flag("--dataset-path", "dataset_path", "path",
         "Folder of the dataset (ImageNet: images + val_map.txt; default: the one "
         "registered with `cache add`, or the demo's photos).", metavar="DIR",
         doc="use your own copy of the dataset (ImageNet: images + val_map.txt)"),
    Flag("--scenario", "scenarios", "text", _SCENARIOS, metavar="S", multiple=True,
         doc="`SingleStream`, `MultiStream`, `Server`, `Offline` or `all` (repeat or "
         "comma-separate); default the card's, else Offline"),
    Flag("--mode", "modes", "text",
         "accuracy, performance or both (default: the card's, else both).", metavar="M",
         multiple=True, commands=RUN_ONLY,
         doc="`accuracy`, `performance` or `both`; default the card's, else both"),
    Flag("--execution-mode", "execution_mode", "choice",
         "test: short runs (default); find (run only): calibrate targets into the targets "
         "file; valid: mlperf.conf's official durations with those targets.",
         choices=("test", "find", "valid"),
         command_choices=(("compliance", ("test", "valid")),),
         doc="`test` (default): short runs, targets estimated from a warm-up; `find`: "
         "calibrate targets (`run` only); `valid`: mlperf.conf's official durations and "
         "query counts with the calibrated targets"),
    Flag("--targets-file", "targets_file", "path",
         "Calibration targets (default ./mlperf-pilot-targets.yaml).", metavar="FILE",
         commands=RUN_ONLY,
         doc="calibration targets (default `./mlperf-pilot-targets.yaml`)"),
    Flag("--compliance", "compliance", "flag",
         "Also run the compliance tests the round requires (TEST01, TEST04, ...).",
         commands=RUN_ONLY,
         doc="also run the compliance tests the round requires (TEST01, TEST04, ...)"),
    Flag("--round", "round", "text",
         f"MLPerf round whose rules apply (default {DEFAULT_ROUND}).", metavar="R",
         doc=f"the MLPerf round whose rules apply: compliance tests, submission layout "
         f"(default {DEFAULT_ROUND})"),
    Flag("--count", "count", "int", "Use only the first N samples of the dataset (default: all).",
         metavar="N", commands=RUN_ONLY,
         doc="use only the first N samples of the dataset (N ≥ 1; more than the data set "
         "has: all of it, and the run notes the cap)"),
    Flag("--duration-ms", "loadgen.min_duration_ms", "int",
         "LoadGen min_duration (ms; default: short in test mode, mlperf.conf's in valid "
         "mode).",
         metavar="MS",
         doc="LoadGen's minimum duration, written to the run's `user.conf`; at least 100 "
         "(shorter runs measure nothing: at 0 LoadGen runs one query and calls it VALID)"),
    Flag("--target-qps", "loadgen.target_qps", "float",
         "Offline expected / Server target QPS (default: estimated from a warm-up, or "
         "calibrated).", metavar="QPS", commands=RUN_ONLY,
         doc="Offline expected / Server target QPS, written to `user.conf`; finite, "
         "0.001 to 10⁹ (default: estimated or calibrated)"),
    Flag("--target-latency-ms", "loadgen.target_latency_ms", "float",
         "SingleStream/MultiStream expected latency, Server latency bound (ms; default: "
         "estimated, calibrated, or the card's bound).",
         metavar="MS", commands=RUN_ONLY,
         doc="SingleStream/MultiStream expected latency, Server latency bound (ms), "
         "written to `user.conf`; finite and above 0 (Server: whole milliseconds)"),
    Flag("--max-batch-size", "sut.max_batch_size", "int",
         "Largest batch the SUT forms (default: the card's, else 8).",
         metavar="N",
         doc="the largest batch the SUT forms (default: the card's, else 8); one whose input "
         "buffers alone exceed the available memory is refused"),
    Flag("--threads", "sut.threads", "int", "Backend intra-op threads (default: cores/workers).",
         metavar="N", commands=RUN_ONLY,
         doc="backend intra-op threads (default: cores ÷ workers); more than 4 threads per "
         "usable core (`--threads`, `--workers`, or the two multiplied) is refused, naming "
         "the limit"),
    Flag("--workers", "sut.workers", "int",
         "SUT worker threads (default 1; Server: one per core).", metavar="N",
         commands=RUN_ONLY,
         doc="SUT worker threads (default: 1 using every core; in Server one "
         "single-threaded worker per core for backends that run calls in parallel on the "
         "CPU: measured 0.98× Offline against 0.73×, see benchmarks/README.md)"),
    Flag("--results-dir", "results_dir", "path", "Where results go (default ./results).",
         metavar="DIR",
         doc="where results go (default `./results`)"),
    Flag("--store", "store", "path",
         "The results store every test is recorded in (default: $MLPERF_PILOT_STORE, else "
         "<results-dir>/results.sqlite).", metavar="FILE",
         doc="the results store (SQLite) every test is recorded in; default "
         "`$MLPERF_PILOT_STORE`, else `<results-dir>/results.sqlite`"),
    Flag("--system-name", "system_name", "text", "Name of this system in the results tree "
         "(default <backend>-<device>).",
         metavar="NAME",
         doc="the system's folder in the results tree (default `<backend>-<device>`)"),
    Flag("--allow-unverified-download", "allow_unverified_download", "flag",
         "Download a model file no checksum can verify (plain http, or a server that does "
         "not say the length); or pin one: --set sut.model_sha256=HEX.", commands=RUN_ONLY,
         doc="download a model file no checksum can verify (plain http, or a server that "
         "does not say the length); or pin one with `--set sut.model_sha256=HEX`"),
    Flag("--trace", "trace", "flag",
         "Keep LoadGen's trace of performance tests (every sample's times) for the "
         "report's latency distribution.", commands=RUN_ONLY,
         doc="keep LoadGen's trace (`mlperf_log_trace.json`: every sample's scheduled and "
         "completion times) of performance tests, for `report`'s latency distribution and "
         "QPS over time (about 0.6 KB per query)"),
)


def flags_for(command: Command) -> tuple[Flag, ...]:
    """The flags ``command`` carries, in table order."""
    return tuple(flag for flag in RUN_FLAGS if command in flag.commands)


def flags_to_layer(values: Mapping[str, Any]) -> dict[str, Any]:
    """The flag layer: the values given (by :attr:`Flag.dest`; None, False or an empty
    list = not given) as a nested mapping of settings."""
    layer: dict[str, Any] = {}
    for flag in RUN_FLAGS:
        value = values.get(flag.dest)
        if value is None or value is False or (flag.multiple and not value):
            continue
        if flag.multiple:
            value = list(value)
        *parents, last = flag.key.split(".")
        node = layer
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return layer


def flags_markdown() -> str:
    """The README's table of flags: flag | setting | meaning."""
    rows = ["| flag | setting | meaning |", "|---|---|---|"]
    for flag in RUN_FLAGS:
        shown = flag.name
        if flag.type == "choice":
            shown += " " + "|".join(flag.choices)
        elif flag.metavar:
            shown += f" {flag.metavar}"
        if flag.multiple:
            shown += " …"
        meaning = flag.doc or flag.help
        if flag.commands == RUN_ONLY:
            meaning += " — `run` only"
        rows.append(f"| `{_cell(shown)}` | `{flag.key}` | {_cell(meaning)} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


__all__ = ["RUN_FLAGS", "Command", "Flag", "FlagType", "flags_for", "flags_markdown",
           "flags_to_layer"]

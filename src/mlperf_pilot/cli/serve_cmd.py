"""`serve`: a catalog model behind an Open Inference Protocol v2 server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlperf_pilot.cli.app import State, _PlainProgress, cli, common_options, pass_state, stderr
from mlperf_pilot.errors import ConfigError

READY_PREFIX = "serving "


@cli.command()
@click.option("--model", default="efficientnet-lite0-demo", show_default=True,
              help="Catalog model to serve.")
@click.option("--backend", help="Backend (default: the card's).")
@click.option("--device", default="cpu", show_default=True, help="Device: cpu, cuda, ...")
@click.option("--model-path", type=click.Path(path_type=Path),
              help="A model file to serve instead of the catalog's copy.")
@click.option("--model-format", help="The card format id of the model file.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (another than loopback exposes the model).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: a free one, printed when ready).")
@click.option("--token-file", type=click.Path(path_type=Path),
              help="File holding a bearer token the clients must send (or set "
              "$MLPERF_PILOT_TOKEN); /v2/health/* stays open.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Samples per backend call, across concurrent requests.")
@click.option("--batch-timeout-us", type=click.IntRange(min=0), default=0, show_default=True,
              help="How long a partial batch may wait for more requests (0: none).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Inference threads (batches in flight at once).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Backend intra-op threads per worker (0: usable cores / workers).")
@click.option("--spin-wait/--no-spin-wait", default=False, show_default=True,
              help="Let the backend's threads busy-wait between the ops of a batch (lower "
              "latency; onnxruntime's stop spinning when the batch ends, leaving the cores "
              "to the HTTP side).")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=64.0,
              show_default=True, help="Largest request body accepted (larger: 413).")
@click.option("--served-name", help="The model's name on the wire (default: the card name).")
@click.option("--access-log", is_flag=True, help="Log every request (off: faster).")
@click.option("--keep-freed-memory/--release-freed-memory", default=True, show_default=True,
              help="Keep freed memory (up to 256 MiB) for the next request bodies instead "
              "of handing it back to the kernel after each (glibc; halves the server's CPU "
              "per large request).")
@common_options()
@pass_state
def serve(state: State, model: str, backend: str | None, device: str, model_path: Path | None,
          model_format: str | None, host: str, port: int, token_file: Path | None,
          max_batch_size: int, batch_timeout_us: int, workers: int, threads: int,
          spin_wait: bool, max_body_mb: float, served_name: str | None, access_log: bool,
          keep_freed_memory: bool) -> None:
    """Serve a model over the Open Inference Protocol v2 (KServe v2 / Triton HTTP/REST):
    health, metadata, JSON and binary-tensor infer, dynamic batching, /metrics.
    SIGTERM or Ctrl-C drains the requests in flight and exits 0."""
    from pydantic import ValidationError

    from mlperf_pilot.oip.serve import Ready
    from mlperf_pilot.oip.serve import serve as run_server
    from mlperf_pilot.oip.serve_config import ServeConfig

    try:
        config = ServeConfig(
            model=model, backend=backend, device=device, model_path=model_path,
            model_format=model_format, host=host, port=port, token_file=token_file,
            max_batch_size=max_batch_size, batch_timeout_us=batch_timeout_us,
            workers=workers, threads=threads, spin_wait=spin_wait,
            max_body_bytes=int(max_body_mb * 1024 * 1024), served_name=served_name,
            access_log=access_log, keep_freed_memory=keep_freed_memory)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"serve --{where.replace('_', '-')}: {error['msg']}",
                          hint="see `mlperf-pilot serve --help`") from None
    if not config.loopback:
        stderr.print(f"warning: listening on {host}: the model is reachable from other "
                     "machines" + ("" if config.token_file else
                                   "; consider --token-file"))

    def announce(ready: Ready) -> None:
        auth = "bearer token required" if ready.auth else "no token"
        stderr.print(f"{READY_PREFIX}{ready.model} on {ready.url} (OIP v2; {ready.backend} "
                     f"on {ready.device_in_use}, max batch {ready.max_batch_size}, "
                     f"{ready.workers} worker(s), {auth}; model: {ready.model_source})")
        sys.stderr.flush()

    signum = run_server(config, cache=state.cache(), progress=_PlainProgress(),
                        on_ready=announce)
    if signum:
        import signal

        stderr.print(f"stopped on {signal.Signals(signum).name}: requests in flight drained")

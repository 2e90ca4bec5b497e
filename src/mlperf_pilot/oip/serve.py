"""``mlperf-pilot serve``: a catalog model behind the Open Inference Protocol.

The model is resolved exactly as the local SUT resolves it (``LocalKind.plan`` and
``resolve``: backend, card format, device, ``--model-path`` or the cache or a build or
a verified download), loaded once with ``backends.load.load_model``, probed
(:func:`mlperf_pilot.oip.served_model.probe`), and served by uvicorn (uvloop and
httptools when installed, no access log unless asked) on one socket bound here before
the model is loaded (a port in use is an error at once; ``--port 0`` reports the port it
got).

SIGTERM or SIGINT: uvicorn stops accepting, lets in-flight requests finish (at most
``drain_timeout_s``), then the batcher stops and the backend is closed;
:func:`serve` returns the signal it stopped on, and the command exits 0.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlperf_pilot.config.sut import read_token
from mlperf_pilot.errors import ConfigError, MissingDependencyError
from mlperf_pilot.oip.serve_config import ServeConfig
from mlperf_pilot.progress import NULL_PROGRESS


@dataclass(frozen=True)
class Ready:
    """What the server says once it takes requests."""

    model: str  # the served name
    url: str  # http://host:port
    backend: str
    device_in_use: str
    model_source: str
    max_batch_size: int
    workers: int
    auth: bool


def load_served_model(config: ServeConfig, *, cache: Any, progress: Any = NULL_PROGRESS
                      ) -> tuple[Any, str]:
    """The model resolved and loaded as the local SUT does it, probed: (ServedModel,
    where its file came from)."""
    from mlperf_pilot.backends.load import load_model
    from mlperf_pilot.catalog import load_catalog
    from mlperf_pilot.config import RunSpec
    from mlperf_pilot.config.sut import LocalSutConfig
    from mlperf_pilot.datasets.prepared import usable_cores
    from mlperf_pilot.oip.served_model import probe
    from mlperf_pilot.sut.local_kind import LocalKind

    catalog = load_catalog()
    card = catalog.model(config.model)
    sut = LocalSutConfig(backend=config.backend, device=config.device,
                         model_format=config.model_format, model_path=config.model_path,
                         max_batch_size=config.max_batch_size)
    spec = RunSpec(model=card.name, sut=sut)
    plan = LocalKind.plan(spec, card, catalog)
    resolved = LocalKind.resolve(spec, plan, card, cache=cache, progress=progress)
    local = resolved.config
    assert isinstance(local, LocalSutConfig) and local.backend is not None
    threads = config.threads or max(1, usable_cores() // config.workers)
    with progress.task(f"loading {card.name} on {plan.label}"):
        backend = load_model(local.backend, plan.fmt, local.model_path, device=local.device,
                             threads=threads, spin_wait=config.spin_wait,
                             spin_between_runs=False)
    try:
        served = probe(backend, plan.fmt, name=config.name, backend_name=local.backend,
                       max_batch_size=config.max_batch_size,
                       output_names=plan.fmt.postprocess.outputs)
    except BaseException:
        backend.close()
        raise
    return served, resolved.source


def require_serve_extra() -> None:
    """MissingDependencyError naming the ``serve`` extra unless its packages import."""
    import importlib

    for module, package in (("starlette", "starlette"), ("uvicorn", "uvicorn"),
                            ("prometheus_client", "prometheus-client")):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(package, "serve", "mlperf-pilot serve") from exc


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve --host {host}: {exc.strerror}",
                          hint="give an address such as 127.0.0.1") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          hint="choose another --port (0 picks a free one)") from exc
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig, *, cache: Any, progress: Any = NULL_PROGRESS,
          on_ready: Callable[[Ready], None] | None = None) -> int | None:
    """Serve until SIGTERM/SIGINT; returns the signal number that stopped it (None when
    the server stopped by itself)."""
    require_serve_extra()
    import uvicorn

    from mlperf_pilot.oip.batcher import Batcher
    from mlperf_pilot.oip.metrics import ServerMetrics
    from mlperf_pilot.oip.server import ServerState, create_app

    token = read_token(config.token_file)
    if config.keep_freed_memory:
        from mlperf_pilot.oip.allocator import keep_freed_memory

        keep_freed_memory()
    metrics = ServerMetrics(config.max_batch_size)
    # the port before the model: a port in use is found before a long load (connections
    # made meanwhile wait in the backlog until the server is ready)
    sock = bind_socket(config.host, config.port)
    try:
        served, source = load_served_model(config, cache=cache, progress=progress)
    except BaseException:
        sock.close()
        raise
    backend = served.backend
    try:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        batcher = Batcher(backend.predict, max_batch_size=served.max_batch_size,
                          batch_timeout_us=config.batch_timeout_us, workers=config.workers,
                          thread_safe=type(backend).thread_safe, observer=metrics)
        state = ServerState(model=served, batcher=batcher, metrics=metrics,
                            max_body_bytes=config.max_body_bytes,
                            token=token.encode() if token else None)
        ready = Ready(model=served.name, url=f"http://{shown}:{port}",
                      backend=served.platform.split("/", 1)[-1],
                      device_in_use=str(served.details.get("device", "")),
                      model_source=source, max_batch_size=served.max_batch_size,
                      workers=config.workers, auth=token is not None)
        app = create_app(state, on_ready=(lambda: on_ready(ready)) if on_ready else None)
        uv_config = uvicorn.Config(
            app, loop="auto", http="auto", lifespan="on", access_log=config.access_log,
            log_level="info" if config.access_log else "warning",
            timeout_graceful_shutdown=int(max(1, config.drain_timeout_s)),
            server_header=False, proxy_headers=False)
        server = _make_server(uv_config, state)
        received: list[int] = []
        # uvicorn restores these handlers after its graceful shutdown and raises the
        # signal it caught once more: ours records it, so the process can close the
        # backend and exit normally instead of dying of the signal
        previous = {sig: signal.signal(sig, lambda number, _frame: received.append(number))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
            batcher.close()
    finally:
        backend.close()
    return received[0] if received else (server.stopped_by or None)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, telling the app when a signal starts the drain (readiness
        then answers 503)."""

        def __init__(self, config: Any, state: Any) -> None:
            super().__init__(config)
            self.app_state = state
            self.stopped_by = 0

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.app_state.draining = True
            self.stopped_by = self.stopped_by or sig
            super().handle_exit(sig, frame)

    return Server


def _make_server(config: Any, state: Any) -> Any:
    return _server_class()(config, state)


__all__ = ["Ready", "bind_socket", "load_served_model", "require_serve_extra", "serve"]

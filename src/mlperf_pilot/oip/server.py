"""The Open Inference Protocol v2 HTTP server (a Starlette app) for one model.

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata),
``/v2/models/{name}`` and ``/v2/models/{name}/ready`` (also under
``/versions/{version}``), ``POST /v2/models/{name}[/versions/{version}]/infer`` (JSON
tensors and the binary tensor data extension, through :mod:`mlperf_pilot.oip.protocol`),
``GET /metrics`` (Prometheus text).

Answers: a malformed request, or a tensor whose name, dtype or shape the model does not
take, 400 with ``{"error": "..."}`` naming the tensor; an unknown model or version 404; a
body over the limit 413 (from ``Content-Length`` before reading, else while reading);
inference failed 500 with the backend's error, never made-up outputs. With a token
configured every route but ``/v2/health/*`` (left open for orchestrators' probes) needs
``Authorization: Bearer <token>`` (compared in constant time), else 401.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlperf_pilot import __version__
from mlperf_pilot.errors import MissingDependencyError
from mlperf_pilot.oip.batcher import Batcher, InferenceFailed
from mlperf_pilot.oip.metrics import ServerMetrics
from mlperf_pilot.oip.protocol import (
    JSON_TYPE,
    ProtocolError,
    decode_request,
    encode_response,
    error_body,
    header_length_of,
)
from mlperf_pilot.oip.served_model import ServedModel

SERVER_NAME = "mlperf-pilot"
EXTENSIONS = ("binary_tensor_data",)
# a JSON request body this large is decoded off the event loop (parsing a list of
# 150k floats takes milliseconds)
_JSON_OFF_LOOP_BYTES = 256 * 1024


class _TooLarge(Exception):
    pass


@dataclass
class ServerState:
    """What the routes share; ``draining`` is set when a signal asks the server to stop
    (readiness then answers 503 while in-flight requests finish)."""

    model: ServedModel
    batcher: Batcher
    metrics: ServerMetrics
    max_body_bytes: int
    token: bytes | None = None
    draining: bool = False
    started: bool = False


def _json(payload: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    return Response(orjson.dumps(payload), status_code=status, media_type=JSON_TYPE)


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(error_body(message), status_code=status, media_type=JSON_TYPE,
                    headers=headers)


def _route_label(path: str) -> str:
    """The route template of a path (a label that does not grow with model names)."""
    if path.startswith("/v2/models/"):
        tail = path.rsplit("/", 1)[-1]
        versioned = "/versions/" in path
        base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
        if tail in ("infer", "ready"):
            return f"{base}/{tail}"
        return base
    if path in ("/v2", "/v2/health/live", "/v2/health/ready", "/metrics"):
        return path
    return "other"


class _Guard:
    """Pure ASGI middleware: the bearer token and the request counter."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        route = _route_label(path)
        token = self.state.token
        if token is not None and not path.startswith("/v2/health/") and not _authorised(
                scope, token):
            await _error("missing or wrong bearer token (Authorization: Bearer <token>)",
                         401, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            self.state.metrics.request(route, 401)
            return
        status = 500

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            self.state.metrics.request(route, status)


def _authorised(scope: dict[str, Any], token: bytes) -> bool:
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, given = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)
    return False


async def _read_body(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(state: ServerState, *, on_ready: Callable[[], None] | None = None) -> Any:
    """The ASGI app serving ``state.model``; ``on_ready`` is called once the batcher runs
    (before the first request is taken)."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route
    except ImportError as exc:
        raise MissingDependencyError("starlette", "serve", "mlperf-pilot serve") from exc

    model = state.model
    batcher = state.batcher
    metadata_body = orjson.dumps(model.metadata())
    server_body = orjson.dumps({"name": SERVER_NAME, "version": __version__,
                                "extensions": list(EXTENSIONS)})

    def known(request: Request) -> str | None:
        """None if the path names the served model (and version), else the 404 text."""
        params = request.path_params
        if params["name"] != model.name:
            return f"unknown model {params['name']!r} (this server serves {model.name!r})"
        version = params.get("version")
        if version is not None and version != model.version:
            return (f"unknown version {version!r} of model {model.name!r} "
                    f"(versions: {model.version!r})")
        return None

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        ok = state.started and not state.draining and batcher.running
        return _json({"ready": ok}, 200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return Response(server_body, media_type=JSON_TYPE)

    async def model_metadata(request: Request) -> Response:
        missing = known(request)
        if missing:
            return _error(missing, 404)
        return Response(metadata_body, media_type=JSON_TYPE)

    async def model_ready(request: Request) -> Response:
        missing = known(request)
        if missing:
            return _error(missing, 404)
        ok = state.started and not state.draining and batcher.running
        return _json({"name": model.name, "ready": ok}, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    async def infer(request: Request) -> Response:
        missing = known(request)
        if missing:
            return _error(missing, 404)
        try:
            body = await _read_body(request, state.max_body_bytes)
        except _TooLarge:
            return _error(f"the request body is over the limit of {state.max_body_bytes} "
                          "bytes", 413)
        try:
            header_length = header_length_of(request.headers)
            if header_length is None and len(body) > _JSON_OFF_LOOP_BYTES:
                decoded = await run_in_threadpool(decode_request, body, None)
            else:
                decoded = decode_request(body, header_length)
            array = model.input_of(decoded)
            chosen, binary = model.outputs_of(decoded)
        except ProtocolError as exc:
            return _error(exc.message, 400)
        finish = _encoder(model.name, model.version, decoded.id, chosen, binary)
        try:
            answer, headers = await batcher.submit(array, finish)
        except InferenceFailed as exc:
            state.metrics.failure()
            return _error(str(exc), 500)
        return Response(answer, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.detail or "error", exc.status_code)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        batcher.start()
        state.started = True
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            state.draining = True
            await run_in_threadpool(batcher.close)

    model_routes = []
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        model_routes += [
            Route(base, model_metadata, methods=["GET"]),
            Route(f"{base}/ready", model_ready, methods=["GET"]),
            Route(f"{base}/infer", infer, methods=["POST"]),
        ]
    app = Starlette(
        routes=[
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
            Route("/v2", server_metadata, methods=["GET"]),
            *model_routes,
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    return _Guard(app, state)


def _encoder(name: str, version: str, request_id: str | None, chosen: list[tuple[str, int]],
             binary: set[str]) -> Callable[[list[np.ndarray]], tuple[bytes, dict[str, str]]]:
    """The response encoding a worker runs on the request's rows of the outputs."""
    every = len(binary) == len(chosen)

    def finish(outputs: list[np.ndarray]) -> tuple[bytes, dict[str, str]]:
        return encode_response(name, [(out, outputs[n]) for out, n in chosen],
                               binary=True if every and binary else binary,
                               model_version=version, request_id=request_id)

    return finish


__all__ = ["EXTENSIONS", "SERVER_NAME", "ServerState", "create_app"]

"""A client of any Open Inference Protocol v2 server (KServe v2 / Triton HTTP/REST).

:class:`OipClient` is one pooled ``httpx.Client`` for the control routes (health,
metadata; keep-alive connections, as many as requests may be in flight
(``concurrency``), HTTP/2 as an option (the ``h2`` package), a bearer token as a header
when the server wants one). Inference requests, the hot path, go through kept-alive
connections of the standard library's :mod:`http.client`
(:mod:`mlperf_pilot.oip.connections`): the least Python per request of the clients
measured here (client CPU 0.23 ms against 0.44 ms through httpcore's pool and ~0.9 ms
through httpx's request models, for one 602 KB binary request), the request's JSON
header and tensor bytes sent as separate buffers (no joined copy), every socket with
TCP_NODELAY. With ``http2`` (or a test transport) they go through httpx like the rest.
Tensors travel through the shared codec (:mod:`mlperf_pilot.oip.protocol`), with the
binary tensor data extension (``protocol="binary"``, the default) or as JSON lists
(``protocol="json"``).

Failures are translated at this boundary, one line each, the httpx error kept as the
cause: no answer within the timeout -> :class:`~mlperf_pilot.errors.SutTimeoutError`;
the server cannot be reached or drops the connection ->
:class:`~mlperf_pilot.errors.SutConnectionError`; a non-2xx answer or a malformed body
-> :class:`~mlperf_pilot.errors.SutError` with the server's ``{"error": ...}`` text.
``infer`` never retries (a retry would hide latency in a performance run); only the
readiness probe :meth:`OipClient.wait_ready` does.

The token is read by :func:`read_token` (a file, else ``MLPERF_PILOT_TOKEN``) and kept
only in the client's headers: never in a message, a repr or a log line.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf_pilot.config.sut import TOKEN_ENV, read_token
from mlperf_pilot.errors import (
    MissingDependencyError,
    SutConnectionError,
    SutError,
    SutTimeoutError,
)
from mlperf_pilot.oip.connections import ConnectionFailed, ConnectionPool, TimedOut
from mlperf_pilot.oip.protocol import (
    InferResponse,
    ProtocolError,
    decode_response,
    encode_request_parts,
    header_length_of,
)

if TYPE_CHECKING:
    import httpx

_MAX_ERROR_CHARS = 300
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
_PROBE_PAUSES_S = (0.05, 0.1, 0.2, 0.3, 0.5)  # the readiness probe's waits, then 0.5 s


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_ERROR_CHARS else line[:_MAX_ERROR_CHARS - 3] + "..."


class OipClient:
    """One Open Inference Protocol server at ``endpoint`` (``http(s)://host:port``, a
    path prefix allowed). ``model``: the model :meth:`infer` and the model probes use
    when they are not given one. Thread-safe: many threads may call :meth:`infer` at
    once, up to ``concurrency`` of them each on its own kept-alive connection."""

    def __init__(self, endpoint: str, *, model: str | None = None, token: str | None = None,
                 concurrency: int = 1, timeout_s: float = 10.0, protocol: str = "binary",
                 http2: bool = False, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self.use_protocol(protocol)
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json, application/octet-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connections = max(1, concurrency)
        self._headers = headers
        # http.client connections for infer (not with HTTP/2 nor a test transport)
        self._pool: ConnectionPool | None = None
        if transport is None:
            try:
                transport = httpx.HTTPTransport(
                    http2=http2, socket_options=_NODELAY,
                    limits=httpx.Limits(max_connections=connections,
                                        max_keepalive_connections=connections))
            except ImportError as exc:  # http2=True without the h2 package
                raise MissingDependencyError("h2", purpose="HTTP/2, --http2") from exc
            if not http2 and self.endpoint.startswith(("http://", "https://")):
                self._pool = ConnectionPool(self.endpoint, size=connections,
                                            timeout_s=timeout_s)
        try:
            self._http = httpx.Client(
                base_url=self.endpoint + "/", headers=headers, http2=http2,
                timeout=httpx.Timeout(timeout_s),
                limits=httpx.Limits(max_connections=connections,
                                    max_keepalive_connections=connections),
                transport=transport, follow_redirects=False,
                # a benchmark measures the server, not a proxy (nor ~/.netrc's credentials)
                trust_env=False,
            )
        except ImportError as exc:  # http2=True without the h2 package
            raise MissingDependencyError("h2", purpose="HTTP/2, --http2") from exc

    def use_protocol(self, protocol: str) -> None:
        """Send and ask for tensors as ``binary`` data (the extension) or ``json``."""
        if protocol not in ("binary", "json"):
            raise ValueError(f"protocol must be 'binary' or 'json', not {protocol!r}")
        self.protocol = protocol
        self.binary = protocol == "binary"

    def __repr__(self) -> str:  # never the token
        return f"OipClient({self.endpoint!r}, model={self.model!r}, protocol={self.protocol!r})"

    def close(self) -> None:
        self._http.close()
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> OipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ requests

    def _url(self, path: str) -> str:
        return f"{self.endpoint}/{path}"

    def _send(self, method: str, path: str, *, content: bytes | None = None,
              headers: dict[str, str] | None = None, timeout_s: float | None = None
              ) -> httpx.Response:
        """One request; httpx's failures as SutTimeoutError/SutConnectionError."""
        import httpx

        timeout = httpx.Timeout(timeout_s) if timeout_s is not None else httpx.USE_CLIENT_DEFAULT
        try:
            return self._http.request(method, path, content=content, headers=headers,
                                      timeout=timeout)
        except httpx.TimeoutException as exc:
            waited = self.timeout_s if timeout_s is None else timeout_s
            raise SutTimeoutError(
                f"{method} {self._url(path)}: no answer within {waited * 1000:.0f} ms "
                f"({type(exc).__name__})",
                hint="raise --request-timeout-ms, or lower --concurrency or --max-batch-size",
            ) from exc
        except httpx.TransportError as exc:
            cause = _one_line(str(exc)) or type(exc).__name__
            raise SutConnectionError(
                f"{method} {self._url(path)}: {cause}",
                hint="check that the server is running and --endpoint is right",
            ) from exc

    def _ok(self, response: httpx.Response, path: str) -> httpx.Response:
        """``response`` when it is 2xx, else SutError with the server's error text."""
        if response.is_success:
            return response
        raise self.status_error(response, path)

    def status_error(self, response: httpx.Response, path: str) -> SutError:
        status = response.status_code
        text = _server_error_text(response)
        message = f"{response.request.method} {self._url(path)}: {status} " \
            f"{response.reason_phrase}" + (f": {text}" if text else "")
        if status in (401, 403):
            hint = (f"give --token-file (or set {TOKEN_ENV}) with the server's bearer token"
                    if status == 401 else "the token given is not allowed to do this")
        elif status == 404:
            hint = "check --endpoint and --remote-model (the server's model name)"
        elif status == 413:
            hint = "lower --max-batch-size: the server refuses bodies this large"
        elif self.binary and response.request.method == "POST":
            hint = ("see the server's log; a server without the binary tensor data extension "
                    "needs --protocol json")
        else:
            hint = "see the server's log"
        return SutError(message, hint=hint)

    def _json(self, path: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        import json

        response = self._ok(self._send("GET", path, timeout_s=timeout_s), path)
        try:
            found = json.loads(response.content)
        except ValueError as exc:
            raise SutError(f"GET {self._url(path)}: the answer is not JSON ({exc})") from exc
        if not isinstance(found, dict):
            raise SutError(f"GET {self._url(path)}: the answer is not a JSON object")
        return found

    def _probe(self, path: str, timeout_s: float | None = None) -> bool:
        """A health route: True on 2xx, False on another status (a 401 raises)."""
        response = self._send("GET", path, timeout_s=timeout_s)
        if response.status_code in (401, 403):
            raise self.status_error(response, path)
        return response.is_success

    def _model_path(self, model: str | None) -> str:
        name = model or self.model
        if not name:
            raise ValueError("no model name: give one, or the client's model")
        return "v2/models/" + urllib.parse.quote(name, safe="")

    # ---------------------------------------------------------------------- the routes

    def live(self, *, timeout_s: float | None = None) -> bool:
        return self._probe("v2/health/live", timeout_s)

    def ready(self, *, timeout_s: float | None = None) -> bool:
        return self._probe("v2/health/ready", timeout_s)

    def model_ready(self, model: str | None = None, *, timeout_s: float | None = None
                    ) -> bool:
        return self._probe(self._model_path(model) + "/ready", timeout_s)

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: name, version, extensions."""
        return self._json("v2")

    def model_metadata(self, model: str | None = None) -> dict[str, Any]:
        """``GET /v2/models/{name}``: name, versions, platform, inputs, outputs."""
        return self._json(self._model_path(model))

    def infer_response(self, inputs: Sequence[tuple[str, np.ndarray]],
                       outputs: Sequence[str] = (), *, model: str | None = None,
                       request_id: str | None = None) -> InferResponse:
        """One inference request, as the server answered it (no retry)."""
        parts, headers = encode_request_parts(
            inputs, outputs=outputs, binary_inputs=self.binary, binary_outputs=self.binary,
            request_id=request_id)
        path = self._model_path(model) + "/infer"
        if self._pool is not None:
            content, answer_headers = self._post_fast(path, parts, headers)
        else:
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            response = self._ok(self._send("POST", path, content=body, headers=headers), path)
            content, answer_headers = response.content, dict(response.headers)
        try:
            return decode_response(content, header_length_of(answer_headers))
        except ProtocolError as exc:
            raise SutError(f"POST {self._url(path)}: malformed answer: {exc}",
                           hint="the server does not follow the Open Inference Protocol "
                           "v2") from exc

    def _post_fast(self, path: str, parts: list[bytes | memoryview], headers: dict[str, str]
                   ) -> tuple[bytes, dict[str, str]]:
        """POST through the kept connections: (body, headers) of a 2xx answer; its
        failures translated as :meth:`_send` translates httpx's."""
        import httpx

        assert self._pool is not None
        url = self._url(path)
        target = urllib.parse.urlsplit(url)._replace(scheme="", netloc="").geturl()
        length = sum(len(part) if isinstance(part, bytes) else part.nbytes for part in parts)
        try:
            answer = self._pool.post(target, parts, length, {**self._headers, **headers})
        except TimedOut as exc:
            raise SutTimeoutError(
                f"POST {url}: no answer within {self.timeout_s * 1000:.0f} ms ({exc})",
                hint="raise --request-timeout-ms, or lower --concurrency or --max-batch-size",
            ) from exc
        except ConnectionFailed as exc:
            cause = _one_line(str(exc)) or type(exc.__cause__).__name__
            raise SutConnectionError(
                f"POST {url}: {cause}",
                hint="check that the server is running and --endpoint is right",
            ) from exc
        if 200 <= answer.status < 300:
            return answer.body, answer.headers
        # the same message as the httpx path, from an httpx view of the answer
        response = httpx.Response(answer.status, headers=answer.headers, content=answer.body,
                                  request=httpx.Request("POST", url))
        raise self.status_error(response, path)

    def infer(self, inputs: Sequence[tuple[str, np.ndarray]], outputs: Sequence[str] = (),
              *, model: str | None = None) -> list[np.ndarray]:
        """The output arrays: those named in ``outputs``, in that order (else all the
        server sent, in its order). Arrays from binary data are read-only views."""
        answer = self.infer_response(inputs, outputs, model=model)
        if not outputs:
            return [tensor.array for tensor in answer.outputs]
        try:
            return [answer.output(name) for name in outputs]
        except ProtocolError as exc:
            raise SutError(f"POST {self._url(self._model_path(model) + '/infer')}: {exc}",
                           hint="check --model-format: the card's outputs are not the "
                           "server's") from exc

    def wait_ready(self, timeout_s: float, *, model: str | None = None) -> None:
        """Wait until the server is live and ready (and ``model``, or the client's model,
        is ready), retrying until ``timeout_s`` has passed; then raise the last reason:
        SutConnectionError (never reached, or no answer) or SutError (it answers, but is
        not ready); a 401/403 at once (retrying cannot fix a token)."""
        name = model or self.model
        deadline = time.monotonic() + timeout_s
        pauses = iter(_PROBE_PAUSES_S)
        while True:
            left = deadline - time.monotonic()
            probe_s = max(0.05, min(self.timeout_s, left)) if left > 0 else 0.05
            try:
                if not self.live(timeout_s=probe_s):
                    last: str = "it is not live (GET /v2/health/live)"
                elif not self.ready(timeout_s=probe_s):
                    last = "it is not ready (GET /v2/health/ready)"
                elif name and not self.model_ready(name, timeout_s=probe_s):
                    last = f"its model {name!r} is not ready (GET /{self._model_path(name)}" \
                        "/ready)"
                else:
                    return
                error: SutError | None = None
            except (SutTimeoutError, SutConnectionError) as exc:
                last, error = exc.message, exc
            left = deadline - time.monotonic()
            if left <= 0:
                message = f"the server at {self.endpoint} is not ready after {timeout_s:g} " \
                    f"s: {last}"
                if error is not None:  # never reached, or no answer
                    raise SutConnectionError(
                        message, hint="start the server (e.g. `mlperf-pilot serve --model "
                        "NAME`) or fix --endpoint; --set sut.ready_timeout_s=S waits longer",
                    ) from error
                raise SutError(message, hint="check --remote-model, or let the server load "
                               "the model first (--set sut.ready_timeout_s=S waits longer)")
            time.sleep(min(next(pauses, _PROBE_PAUSES_S[-1]), left))


def _server_error_text(response: httpx.Response) -> str:
    """The server's ``{"error": "..."}`` text (else the body's first 300 characters)."""
    import json

    body = response.content
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    if isinstance(found, dict) and "error" in found:
        return _one_line(str(found["error"]))
    if isinstance(found, dict) and "detail" in found:  # FastAPI-style servers
        return _one_line(str(found["detail"]))
    return _one_line(body[:_MAX_ERROR_CHARS * 2].decode("utf-8", errors="replace"))


__all__ = ["OipClient", "read_token"]

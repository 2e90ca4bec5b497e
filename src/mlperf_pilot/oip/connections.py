"""Kept-alive HTTP/1.1 connections for the client's inference requests (the hot path).

The standard library's :mod:`http.client` costs the least Python per request of the
clients measured on this project's 2-core machine (one 602 KB binary request to a bare
ASGI app: client CPU 0.23 ms a request against 0.44 ms through httpcore's pool, p50
0.45 against 0.63 ms; ``benchmarks/README.md``, "Network SUT"), and it sends a body given
as a sequence of buffers one after the other, so the request's JSON header and the
tensors' bytes go out without being joined into one copy first.

:class:`ConnectionPool` keeps up to ``size`` connections; a thread takes one for a
request and gives it back. A kept connection the server has closed meanwhile (its socket
reads as ready while idle: EOF) is replaced before use, and a request whose connection
turns out dead before any answer is sent once more on a fresh one (the server did not
take it: it answered nothing). Failures are raised as :class:`ConnectionFailed` or
:class:`TimedOut` (socket timeouts); the client translates them into its errors.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass


class ConnectionFailed(Exception):
    """The server could not be reached, or dropped the connection."""


class TimedOut(Exception):
    """No answer (or no progress sending) within the timeout."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


# a kept connection the server closed before the request went out: the server took
# nothing, so sending again on a new connection is safe
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          ConnectionAbortedError)


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read (EOF: the peer closed it); poll,
    not select, which cannot watch descriptors past 1023."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class ConnectionPool:
    """HTTP/1.1 keep-alive connections to one ``http(s)://host[:port]``."""

    def __init__(self, endpoint: str, *, size: int, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {endpoint!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.timeout_s = timeout_s
        self.size = max(1, size)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._context = ssl.create_default_context() if self.https else None

    def _new(self) -> http.client.HTTPConnection:
        if self._context is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout_s, context=self._context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port,
                                                    timeout=self.timeout_s)
        try:
            connection.connect()
        except TimeoutError as exc:
            raise TimedOut(f"connect: {exc}") from exc
        except OSError as exc:
            raise ConnectionFailed(exc.strerror or str(exc) or type(exc).__name__) from exc
        assert connection.sock is not None
        # the request's parts are separate writes: Nagle's algorithm would hold them back
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was kept from an earlier request."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._new(), False
            if connection.sock is not None and not _readable(connection.sock):
                return connection, True
            connection.close()  # readable while idle: the server closed it

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(connection)
                return
        connection.close()

    def post(self, target: str, parts: Sequence[bytes | memoryview], length: int,
             headers: dict[str, str]) -> Answer:
        """POST ``parts`` (``length`` bytes in all) to ``target`` (a path with its
        query); the whole answer."""
        sent = {**headers, "Content-Length": str(length)}
        for attempt in (1, 2):
            connection, kept = self._take()
            try:
                connection.request("POST", target, body=parts, headers=sent)
                response = connection.getresponse()
                body = response.read()
            except TimeoutError as exc:
                connection.close()
                raise TimedOut(str(exc) or "timed out") from exc
            except _STALE as exc:
                connection.close()
                if kept and attempt == 1:
                    continue
                raise ConnectionFailed(str(exc) or type(exc).__name__) from exc
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise ConnectionFailed(str(exc) or type(exc).__name__) from exc
            found = {key.lower(): value for key, value in response.getheaders()}
            if response.will_close:
                connection.close()
            else:
                self._give_back(connection)
            return Answer(response.status, found, body)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


__all__ = ["Answer", "ConnectionFailed", "ConnectionPool", "TimedOut"]

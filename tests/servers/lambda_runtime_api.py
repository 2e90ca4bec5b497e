"""A small AWS Lambda Runtime API server for tests, run as a subprocess on 127.0.0.1, so
the real runtime client (``python -m awslambdaric module.handler``) can run a function
here as Lambda runs it.

    python lambda_runtime_api.py        # prints its port as the first line of stdout

The runtime's side (what awslambdaric calls, API version 2018-06-01):

    GET  /2018-06-01/runtime/invocation/next           waits for an event; headers
         Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
    POST /2018-06-01/runtime/invocation/{id}/response  the handler's return value
    POST /2018-06-01/runtime/invocation/{id}/error     its exception (errorType, errorMessage)
    POST /2018-06-01/runtime/init/error                an exception at import (init)

The test's side:

    POST /test/invoke?timeout_s=S   body = the event; waits for the function's answer and
         returns {"request_id", "outcome": "response" | "error", "payload", "elapsed_ms"}
         (504 past the timeout)
    GET  /test/status               {"init_error", "invocations", "polls"}

Nagle's algorithm is off on every accepted socket (with delayed ACKs a small response
otherwise waits ~40 ms). Stop it by its PID.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
DEADLINE_MS = 60_000
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:mlperf-pilot-test"


class Invocation:
    def __init__(self, request_id: str, event: bytes) -> None:
        self.request_id = request_id
        self.event = event
        self.done = threading.Event()
        self.outcome = ""
        self.payload: Any = None
        self.started = time.perf_counter()


class State:
    def __init__(self) -> None:
        self.pending: queue.SimpleQueue[Invocation] = queue.SimpleQueue()
        self.running: dict[str, Invocation] = {}
        self.lock = threading.Lock()
        self.init_error: Any = None
        self.invocations = 0
        self.polls = 0
        self.ids = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == f"{PREFIX}/invocation/next":
            with state.lock:
                state.polls += 1
            invocation = state.pending.get()  # long poll, as Lambda's API does
            with state.lock:
                state.running[invocation.request_id] = invocation
            deadline = int(time.time() * 1000) + DEADLINE_MS
            self._send(200, invocation.event, {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": f"Root=1-test-{invocation.request_id}"})
        elif self.path == "/test/status":
            with state.lock:
                status = {"init_error": state.init_error, "invocations": state.invocations,
                          "polls": state.polls}
            self._send(200, json.dumps(status).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        if url.path == f"{PREFIX}/init/error":
            with state.lock:
                state.init_error = _json(body)
            self._send(202, b'{"status": "OK"}')
            return
        if url.path.startswith(f"{PREFIX}/invocation/"):
            parts = url.path[len(PREFIX) + len("/invocation/"):].split("/")
            if len(parts) == 2 and parts[1] in ("response", "error"):
                with state.lock:
                    invocation = state.running.pop(parts[0], None)
                if invocation is None:
                    self._send(400, b'{"errorType": "InvalidRequestID"}')
                    return
                invocation.outcome, invocation.payload = parts[1], _json(body)
                invocation.done.set()
                self._send(202, b'{"status": "OK"}')
                return
        if url.path == "/test/invoke":
            timeout_s = float(urllib.parse.parse_qs(url.query).get("timeout_s", ["60"])[0])
            with state.lock:
                state.invocations += 1
                request_id = f"req-{next(state.ids):06d}"
            invocation = Invocation(request_id, body)
            state.pending.put(invocation)
            if not invocation.done.wait(timeout_s):
                self._send(504, json.dumps({"request_id": request_id,
                                            "outcome": "timeout"}).encode())
                return
            answer = {"request_id": request_id, "outcome": invocation.outcome,
                      "payload": invocation.payload,
                      "elapsed_ms": (time.perf_counter() - invocation.started) * 1000.0}
            self._send(200, json.dumps(answer).encode())
            return
        self._send(404, b'{"error": "not found"}')


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = State()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def main() -> int:
    server = Server()
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

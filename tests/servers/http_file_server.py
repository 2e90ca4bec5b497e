"""A real HTTP file server for tests, run as a subprocess on 127.0.0.1.

    python http_file_server.py DIR [--drop-after BYTES [--drop-times K]] [--fail-first K]
                                   [--ignore-range] [--no-length] [--request-log FILE]

Binds 127.0.0.1 on a free port, prints the port as its first line of stdout, then
serves the files under DIR until it is killed. It answers ``Range: bytes=N-`` (and
``bytes=N-M``) with 206 and Content-Range, and a range past the end with 416.

Failure injection, so that download code meets real sockets and real failures:

``--drop-after BYTES``  send only that many body bytes, then close the connection
                        (for the first ``--drop-times K`` responses with a body, K=1)
``--fail-first K``      answer the first K requests with 500
``--ignore-range``      ignore Range and always send the whole file with 200
``--no-length``         send no Content-Length: the body ends when the connection
                        closes (as HTTP/1.0 servers and some proxies do), so a body cut
                        short by ``--drop-after`` looks complete to the client
``--request-log FILE``  append one JSON line per request: method, path, range, status
                        and whether the body was cut short
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class ServerState:
    """Counters shared by the handler threads."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.requests = 0
        self.drops = 0

    def count_request(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests

    def take_drop(self) -> bool:
        """Whether this response's body is to be cut short."""
        with self.lock:
            if self.args.drop_after is None or self.drops >= self.args.drop_times:
                return False
            self.drops += 1
            return True

    def log(self, entry: dict[str, object]) -> None:
        if self.args.request_log is None:
            return
        with self.lock, open(self.args.request_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


def make_handler(root: Path, state: ServerState) -> type[BaseHTTPRequestHandler]:
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *items: object) -> None:
            return  # keep stderr quiet; the request log is the record

        def do_GET(self) -> None:
            number = state.count_request()
            if number <= args.fail_first:
                self.send_empty(500)
                return
            path = self.local_path()
            if path is None:
                self.send_empty(404)
                return
            data = path.read_bytes()
            wanted = None if args.ignore_range else self.headers.get("Range")
            if wanted is None:
                self.send_body(200, data, {})
                return
            match = _RANGE.fullmatch(wanted.strip())
            if match is None:
                self.send_empty(400)
                return
            start = int(match.group(1))
            end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
            if start >= len(data) or end < start:
                self.send_empty(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            self.send_body(206, data[start:end + 1],
                           {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

        def local_path(self) -> Path | None:
            """The file the request names, or None if it is missing or outside root."""
            relative = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            path = (root / relative).resolve()
            if root not in path.parents or not path.is_file():
                return None
            return path

        def record(self, status: int, dropped: bool = False) -> None:
            state.log({"method": self.command, "path": self.path,
                       "range": self.headers.get("Range"), "status": status,
                       "dropped": dropped})

        def send_empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.record(status)
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def send_body(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            drop = state.take_drop()
            self.record(status, dropped=drop)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if args.no_length:
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drop:
                self.wfile.write(body[:args.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder whose files are served")
    parser.add_argument("--drop-after", type=int, default=None, metavar="BYTES")
    parser.add_argument("--drop-times", type=int, default=1, metavar="K")
    parser.add_argument("--fail-first", type=int, default=0, metavar="K")
    parser.add_argument("--ignore-range", action="store_true")
    parser.add_argument("--no-length", action="store_true")
    parser.add_argument("--request-log", type=Path, default=None, metavar="FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(root, ServerState(args)))
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A real HTTP file server for tests, run as a subprocess on 127.0.0.1.

    python http_file_server.py DIR [--drop-after BYTES --drop-times K] [--fail-first K]
                                   [--ignore-range] [--request-log FILE]

Prints the port it bound as its first line, then serves DIR until killed. Supports
``Range: bytes=N-``; can cut the body short, answer 500 the first K times, or ignore
Range, so downloads are tested against real sockets and real failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_handler(root: Path, args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    state = {"requests": 0, "drops": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *items: object) -> None:
            return

        def _log(self, status: int) -> None:
            if args.request_log:
                with lock, open(args.request_log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"path": self.path, "range": self.headers.get("Range"),
                                             "status": status}) + "\n")

        def do_GET(self) -> None:
            with lock:
                state["requests"] += 1
                number = state["requests"]
            if number <= args.fail_first:
                self._send_status(500)
                return
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self._send_status(404)
                return
            data = path.read_bytes()
            start = 0
            wanted = self.headers.get("Range")
            if wanted and not args.ignore_range and wanted.startswith("bytes="):
                start = int(wanted[len("bytes="):].split("-")[0])
                if start >= len(data):
                    self._log(416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            else:
                status = 200
            body = data[start:]
            self._log(status)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            with lock:
                drop = args.drop_after is not None and state["drops"] < args.drop_times
                if drop:
                    state["drops"] += 1
            if drop:
                self.wfile.write(body[: args.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _send_status(self, status: int) -> None:
            self._log(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--drop-after", type=int, default=None)
    parser.add_argument("--drop-times", type=int, default=1)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--ignore-range", action="store_true")
    parser.add_argument("--request-log", default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.root, args))
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

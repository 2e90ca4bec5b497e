"""``report --serve``: the report folder over HTTP on 127.0.0.1, for a browser.

The standard library's threading HTTP server with its static-file handler, bound to the
loopback interface only (port 0: a free one). SIGINT (Ctrl-C) and SIGTERM stop it
cleanly: the handler asks the serving loop to shut down from another thread, the socket
is closed and :func:`serve_folder` returns the signal's number. Requests are not
logged (the page is one file and its pictures are inside it).
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_folder(folder: Path, port: int, on_ready: Callable[[str], None], *,
                 page: str = "index.html") -> int:
    """Serve ``folder`` until SIGINT/SIGTERM; ``on_ready(url)`` once it listens. Returns
    the number of the signal that stopped it. OSError when the port cannot be bound."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    received: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        received.append(signum)
        threading.Thread(target=server.shutdown, name="report-serve-stop",
                         daemon=True).start()

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}
    try:
        on_ready(f"http://{HOST}:{server.server_address[1]}/{page}")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for signum, old in previous.items():
            signal.signal(signum, old)
    return received[0] if received else 0


__all__ = ["HOST", "serve_folder"]

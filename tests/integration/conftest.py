"""Integration fixtures: a real HTTP file server on 127.0.0.1, one process per start.

``http_file_server(root, *flags)`` starts ``tests/servers/http_file_server.py`` serving
``root`` (flags such as ``"--drop-after", "100000"`` inject failures) and returns a
:class:`FileServer`. Every server is stopped by its own PID when the test ends.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "servers" / "http_file_server.py"
START_TIMEOUT_S = 10.0


class FileServer:
    """A running server: its URLs and the requests it has logged."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def requests(self) -> list[dict[str, object]]:
        """One dict per request so far: method, path, range, status, dropped."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_port(process: subprocess.Popen[str], stderr_log: Path) -> int:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=START_TIMEOUT_S)
    line = process.stdout.readline().strip() if ready else ""
    if not line.isdigit():
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(f"test HTTP server did not start (stdout {line!r}): "
                           f"{stderr_log.read_text(errors='replace')[-2000:]}")
    return int(line)


@pytest.fixture
def http_file_server(tmp_path: Path) -> Iterator[Callable[..., FileServer]]:
    """A factory: ``http_file_server(root, *flags) -> FileServer``."""
    servers: list[FileServer] = []

    def start(root: Path, *flags: str) -> FileServer:
        number = len(servers)
        log = tmp_path / f"server-{number}-requests.jsonl"
        stderr_log = tmp_path / f"server-{number}-stderr.txt"
        with stderr_log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(SERVER_SCRIPT), str(root), "--request-log", str(log),
                 *flags],
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )
        server = FileServer(process, _read_port(process, stderr_log), log)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One asset cache for the session's serverless runtime layers (pip runs once per
    engine and layer recipe, not once per test)."""
    return tmp_path_factory.mktemp("layer-cache")

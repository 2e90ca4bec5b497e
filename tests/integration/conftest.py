"""A real HTTP server on 127.0.0.1, started per test and stopped by its own PID."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "servers" / "http_file_server.py"


class FileServer:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def requests(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def http_file_server(tmp_path: Path) -> Iterator[Callable[..., FileServer]]:
    started: list[subprocess.Popen[str]] = []

    def start(root: Path, *flags: str) -> FileServer:
        log = tmp_path / f"requests-{len(started)}.jsonl"
        process = subprocess.Popen(
            [sys.executable, str(SERVER), str(root), "--request-log", str(log), *flags],
            stdout=subprocess.PIPE, text=True,
        )
        started.append(process)
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        return FileServer(process, port, log)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""Start and stop a real `mlperf-pilot serve` process on 127.0.0.1 for tests and benchmarks.

    from servers.oip_server import oip_server            # tests/ is on sys.path

    with oip_server(["--model-path", str(model)], log_dir=tmp_path) as server:
        httpx.get(f"{server.url}/v2/health/ready")

``start_oip_server(args, log_dir=...)`` runs ``python -m mlperf_pilot serve --port 0
ARGS`` with stderr (and stdout) in ``log_dir/oip-server-N.log``, waits for the ready line
the command prints (``serving <model> on http://127.0.0.1:PORT ...``) and returns an
:class:`OipServer` (its URL, port, PID, log). ``stop()`` sends SIGTERM to that PID (the
server drains its requests and exits 0), kills it after ``timeout_s``, and returns the
exit code. A process that exits before it is ready raises ``SutError`` with the log's
last lines (``mlperf_pilot.oip.process``, shared with the OIP benchmarks). The
environment is the caller's minus ``MLPERF_PILOT_TOKEN`` unless ``env`` says
otherwise (pass ``token`` to set it for the server only).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlperf_pilot.oip.process import ServeProcess, start_serve

START_TIMEOUT_S = 60.0
_numbers = itertools.count(1)

OipServer = ServeProcess  # url, port, pid, model, log; model_url(), log_text(), stop()


def start_oip_server(args: Sequence[str], *, log_dir: Path, env: Mapping[str, str] | None = None,
                     token: str | None = None, timeout_s: float = START_TIMEOUT_S
                     ) -> OipServer:
    """``mlperf-pilot serve --port 0 ARGS`` started and ready (see the module doc)."""
    environment = dict(os.environ if env is None else env)
    environment.pop("MLPERF_PILOT_TOKEN", None)
    if token is not None:
        environment["MLPERF_PILOT_TOKEN"] = token
    command = [sys.executable, "-m", "mlperf_pilot", "serve", "--port", "0", *args]
    return start_serve(command, log=log_dir / f"oip-server-{next(_numbers)}.log",
                       env=environment, timeout_s=timeout_s, args=args)


@contextmanager
def oip_server(args: Sequence[str], *, log_dir: Path, env: Mapping[str, str] | None = None,
               token: str | None = None, timeout_s: float = START_TIMEOUT_S
               ) -> Iterator[OipServer]:
    """A server for the ``with`` block, stopped by its PID afterwards."""
    server = start_oip_server(args, log_dir=log_dir, env=env, token=token, timeout_s=timeout_s)
    try:
        yield server
    finally:
        server.stop()


__all__ = ["OipServer", "oip_server", "start_oip_server"]

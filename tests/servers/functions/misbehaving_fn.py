"""A Lambda handler that misbehaves on purpose, for the local function pool's failure
tests (``--set sut.function_handler=misbehaving_fn.handler --set
sut.function_code=tests/servers/functions``).

It delegates to the real function (``mlperf_pilot_fn.handler``, loaded in the global
scope as on Lambda), except for the requests it is told to fail: those whose request id
starts with a mode (``raise-``, ``hang-``, ``exit-``, ``hog-``), or, when
``MLPERF_TEST_FN_MODE`` is set, every request naming a sample other than sample 0 (the
warm-ups only ever send sample 0, so a run reaches LoadGen and fails there):

- ``raise``: the handler raises RuntimeError (Lambda's error object);
- ``hang``: it never answers (sleeps an hour; the pool ends it by its PID);
- ``exit``: the instance process dies (``os._exit(3)``);
- ``hog``: it touches 2 GiB of memory, past the instance's memory limit.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from typing import Any

from mlperf_pilot_fn import handler as real

MODES = ("raise", "hang", "exit", "hog")


def _mode(event: Any) -> str:
    record = event["Records"][0]["s3"]
    key = urllib.parse.unquote_plus(record["object"]["key"])
    name = key.rpartition("/")[2]
    for mode in MODES:
        if name.startswith(f"{mode}-"):
            return mode
    mode = os.environ.get("MLPERF_TEST_FN_MODE", "")
    if not mode:
        return ""
    body = real.INSTANCE.s3.get_object(Bucket=record["bucket"]["name"], Key=key)["Body"].read()
    keys = real.messages.Request.from_json(body).sample_keys  # inline samples or not
    return "" if all(k.endswith("/0.npy") for k in keys) else mode


def handler(event: Any, context: Any = None) -> Any:
    mode = _mode(event)
    if mode == "raise":
        raise RuntimeError("the test function fails on purpose")
    if mode == "hang":
        time.sleep(3600)
    if mode == "exit":
        os._exit(3)
    if mode == "hog":
        block = bytearray(2 << 30)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
    return real.handler(event, context)

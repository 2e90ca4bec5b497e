"""The server's allocator settings (oip/allocator.py) take on glibc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from mlperf_pilot.oip.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_glibc_takes_the_settings() -> None:
    # in a child: the settings stay for the rest of the process
    code = ("from mlperf_pilot.oip.allocator import keep_freed_memory; "
            "import numpy as np; ok = keep_freed_memory(); "
            "[np.ones(150_528, np.float32).sum() for _ in range(100)]; print(ok)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "True"


def test_elsewhere_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert keep_freed_memory() is False

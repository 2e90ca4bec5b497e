"""Keeping freed memory in the server process, for request bodies of hundreds of KB.

glibc's malloc hands a large block back to the kernel when it is freed (``munmap``, or
trimming the heap's top) and moves its mmap threshold up to the size of the last block
freed, so a server that takes one 602 KB body after another gets new pages from the
kernel for each (page faults, each page zeroed) and gives them back afterwards. On this
project's 2-core machine that was more than half of the server's CPU per request: a
bare uvicorn app spent 0.68-0.72 ms of CPU per 602 KB request with glibc's defaults and
0.27-0.37 ms with the settings below (``benchmarks/README.md``, "Network SUT").

:func:`keep_freed_memory` sets, with ``mallopt``, a fixed mmap threshold (blocks under
32 MiB come from the heap), a trim threshold of 256 MiB (freed heap memory is kept
for reuse up to that much) and a top pad of 64 MiB (the heap grows in large steps). It
does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set the allocator as described above; whether it was set (False: not glibc, or
    glibc refused a value)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 on a value it refuses
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))


__all__ = ["keep_freed_memory"]

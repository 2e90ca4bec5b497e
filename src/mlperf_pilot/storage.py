"""A full disk, said plainly: the translation of ENOSPC/EDQUOT at the writing boundary.

Writers (results, the cache, the targets file) let an ``OSError`` for a full disk reach
the place that knows what is already safe on disk; that place turns it into an error
naming the file that could not be written and what was kept, with the fix.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

from mlperf_pilot.errors import AssetError, MlperfPilotError, StoreError

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# a short write with less than this free on the disk afterwards is a full disk
SHORT_WRITE_SLACK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError that means "no space left" (or over quota)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_error(exc: OSError, *, kept: str, error: type[MlperfPilotError] = StoreError,
                    where: str = "") -> MlperfPilotError:
    """The one-line error for a full disk: the file (``where``, else the one in the
    OSError), what was kept, the fix."""
    path = where or exc.filename or "a file"
    reason = "over the disk quota" if exc.errno == errno.EDQUOT else "no space left on the device"
    return error(
        f"{reason} while writing {path}",
        hint=f"free space there (or point the output at another disk) and rerun; kept: {kept}",
    )


def run_disk_full_error(exc: OSError, *, cache_root: Path, results_dir: Path,
                        finished: list[str], partial: Path | None = None) -> MlperfPilotError:
    """A run that filled a disk: in the cache (AssetError) or in the results
    (``partial``: where the unfinished scenario's files were left)."""
    if exc.filename and Path(os.path.abspath(exc.filename)).is_relative_to(cache_root):
        return disk_full_error(exc, error=AssetError, kept=(
            f"every complete entry of the cache {cache_root} (a half-built one is never "
            "used)"))
    results = Path(results_dir).resolve()
    names = f" ({', '.join(finished)})" if finished else ""
    unfinished = f" (its scenario's files are in {partial})" if partial is not None else ""
    return disk_full_error(exc, where=exc.filename or f"the results under {results}", kept=(
        f"{len(finished)} finished test(s){names} under {results}; the test being written "
        f"is incomplete{unfinished}"))


def as_disk_full(exc: OSError, path: Path) -> OSError:
    """The same error, as ENOSPC when it is a full disk in disguise: numpy's writers
    report a short write as ``OSError("N requested and M written")`` with no errno.
    Checked, not guessed: only when the file system of ``path`` has no room left."""
    if exc.errno is not None:
        return exc
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return exc
    if stat.f_bavail * stat.f_frsize >= SHORT_WRITE_SLACK:
        return exc
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    full.__cause__ = exc
    return full


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temp file beside it, renamed
    over it. On failure the temp file is removed and the OSError names ``path`` (a
    failed ``write`` carries no file name of its own)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None or Path(exc.filename) == tmp:
            exc.filename = str(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

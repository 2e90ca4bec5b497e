"""What plan_run checks about this machine before any model is loaded or image
preprocessed: the folders a run writes, the threads it starts, the memory its batches
need, the targets file it reads. Each problem is a ConfigError (exit 2) with the fix.

Folders are probed for real (a nameless temporary file in the nearest existing
folder), because permission bits do not say it: root passes every access(2) check, yet
cannot write on a read-only mount, in an immutable (``chattr +i``) folder or in /proc.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf_pilot.errors import ConfigError

if TYPE_CHECKING:
    from mlperf_pilot.catalog import PreprocessSpec
    from mlperf_pilot.config import RunSpec

# More inference threads than this per usable core only slow a run down (1000 threads on
# 2 cores hung the warm-up for minutes): refused, naming the limit.
THREADS_PER_CORE = 4


def check_folder(path: Path, *, what: str, option: str) -> None:
    """``path`` is a folder that exists or can be created, and is writable."""
    path = Path(path).expanduser()
    absolute = Path(os.path.abspath(path))
    if _exists(absolute) and not absolute.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder",
                          hint=f"give {option} a folder (or a path that does not exist yet)")
    _check_writable_base(absolute, path, what=what, option=option)


def check_file_target(path: Path, *, what: str, option: str) -> None:
    """``path`` is a file that exists or can be created in a writable folder."""
    path = Path(path).expanduser()
    absolute = Path(os.path.abspath(path))
    if absolute.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a file",
                          hint=f"give {option} a file name (e.g. {absolute / 'targets.yaml'})")
    _check_writable_base(absolute.parent, path, what=what, option=option)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a folder on the way that cannot be searched
        return False


def _check_writable_base(absolute: Path, shown: Path, *, what: str, option: str) -> None:
    base = absolute
    while not _exists(base) and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"{what} {shown} lies under the file {base}",
                          hint=f"give {option} a path that is not inside a file")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".mlperf-pilot-probe-"):
            pass
    except OSError as exc:
        why = ("the file system takes no new files" if exc.errno == errno.ENOENT
               else exc.strerror or str(exc))
        raise ConfigError(
            f"{what} {shown} is not writable: no file can be created in {base} ({why})",
            hint=f"give {option} a folder you can write in (or make {base} writable)",
        ) from None


def check_threads(*, threads: int, workers: int, layouts: list[tuple[int, int]],
                  preprocess_workers: int, cores: int) -> None:
    """Refuse thread counts far above the cores (``THREADS_PER_CORE`` per core)."""
    limit = THREADS_PER_CORE * cores
    where = f"on {cores} usable core(s); the limit is {limit} ({THREADS_PER_CORE} per core)"
    if threads > limit:
        raise ConfigError(f"--threads {threads} would start {threads} intra-op threads {where}",
                          hint=f"use --threads at most {limit}, or leave it out "
                          "(default: the cores divided by the workers)")
    if workers > limit:
        raise ConfigError(f"--workers {workers} would start {workers} worker threads {where}",
                          hint=f"use --workers at most {limit}, or leave it out")
    for w, t in layouts:
        if w * t > limit:
            raise ConfigError(
                f"--workers {w} x --threads {t} would start {w * t} inference threads {where}",
                hint=f"lower --workers or --threads so that workers x threads is at most "
                f"{limit}")
    if preprocess_workers > limit:
        raise ConfigError(
            f"preprocess_workers {preprocess_workers} would start that many preprocessing "
            f"threads {where}",
            hint=f"set preprocess_workers at most {limit}, or 0 (one per core)")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_batch_memory(*, max_batch_size: int, sample_shape: tuple[int, ...], itemsize: int,
                       workers: int, available: int | None) -> None:
    """Refuse a batch whose input buffers alone exceed the available memory.

    Buffers of a full batch the run holds at once: the warm-up's source and gather
    buffer in the parent (2), then in each LoadGen process its warm-up batch and one
    gather buffer per worker (1 + workers). The model's own activations come on top,
    so this refuses only what cannot possibly fit."""
    if available is None:
        return
    sample_bytes = math.prod(sample_shape) * itemsize
    buffers = max(2, 1 + max(1, workers))
    need = sample_bytes * max_batch_size * buffers
    if need <= available:
        return
    fits = max(1, available // (sample_bytes * buffers))
    raise ConfigError(
        f"--max-batch-size {max_batch_size} needs {_gib(need)} of memory for its input "
        f"buffers alone ({buffers} x {max_batch_size} samples of {sample_bytes:,} bytes); "
        f"{_gib(available)} is available",
        hint=f"use a smaller --max-batch-size (at most {fits} here, less to leave room "
        "for the model)")


def _gib(size: int) -> str:
    if size >= 1 << 60:
        return f"{size / (1 << 60):.3g} EiB"
    return f"{size / (1 << 30):.3g} GiB"


def check_run(spec: RunSpec, *, system: str, model: str, recipe: PreprocessSpec,
              parallel: bool) -> None:
    """Everything about this machine a run needs, checked before it starts."""
    from mlperf_pilot.calibration import DEFAULT_TARGETS_FILE, TargetsFile
    from mlperf_pilot.config import ExecutionMode, cache_dir_for
    from mlperf_pilot.datasets.prepared import usable_cores
    from mlperf_pilot.results.layout import ScenarioPaths

    check_folder(spec.results_dir, what="results folder", option="--results-dir")
    for scenario in spec.scenarios:  # the deepest folders a run writes
        check_folder(ScenarioPaths.of(spec.results_dir, system, model, scenario).root,
                     what="results folder", option="--results-dir")
    cache = cache_dir_for(spec)  # the one precedence; the option named is where it came from
    if spec.cache_dir is not None:
        check_folder(cache, what="cache folder", option="--cache-dir")
    elif os.environ.get("MLPERF_PILOT_CACHE"):
        check_folder(cache, what="cache folder", option="MLPERF_PILOT_CACHE (or --cache-dir)")
    else:
        check_folder(cache, what="the user cache folder", option="--cache-dir")
    if spec.execution_mode in (ExecutionMode.FIND, ExecutionMode.VALID):
        # find writes the targets file, valid reads it (and writes it after a rerun)
        targets = TargetsFile(spec.targets_file or DEFAULT_TARGETS_FILE)
        check_file_target(targets.path, what="targets file", option="--targets-file")
        targets.load()

    cores = usable_cores()
    layouts = sorted({spec.sut.layout(s, cores, parallel=parallel)
                      for s in spec.scenarios})
    # a kind without local intra-op threads (a remote server's client) has worker
    # threads that wait on the network: its own config bounds them
    local_threads = "threads" in type(spec.sut).model_fields
    check_threads(threads=getattr(spec.sut, "threads", 0),
                  workers=spec.sut.workers if local_threads else 0,
                  layouts=layouts if local_threads else [],
                  preprocess_workers=spec.preprocess_workers, cores=cores)
    try:
        shape = recipe.sample_shape
    except ValueError:  # no fixed size: nothing to compute from
        return
    import numpy as np

    check_batch_memory(max_batch_size=spec.sut.max_batch_size, sample_shape=shape,
                       itemsize=np.dtype(recipe.dtype).itemsize,
                       workers=max(w for w, _ in layouts), available=available_memory())

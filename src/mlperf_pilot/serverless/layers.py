"""Lambda layer and function zips: the runtime layer (the engine and numpy installed with
``pip install --target`` for the function's Python and platform, files the function
never loads removed, cached), reproducible zips, and Lambda's size limits.

A layer zip holds ``python/`` at its root (Lambda unpacks layers into /opt, and
/opt/python is on the function's ``sys.path``); a function zip holds the handler's
package at its root. boto3 is not in the runtime layer: the Lambda Python runtime has it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlperf_pilot.errors import AssetError, ConfigError

# Lambda's quotas (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # a zip passed in the API call itself
UNZIPPED_LIMIT = 250 * 1024 * 1024  # the function and all its layers, unzipped
LAYERS_LIMIT = 5

# the distributions each engine needs at run time (their other requirements are for
# tools the function never runs: onnxruntime's sympy/protobuf, openvino's telemetry)
ENGINE_DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime", "numpy"),
    "openvino": ("openvino", "numpy"),
    "opencv": ("opencv-python-headless", "numpy"),
    "null": ("numpy",),
}
# files the function never loads, by engine (paths under python/, fnmatch patterns);
# the tests load every engine from its pruned layer
_PRUNE_COMMON = ("*/__pycache__", "bin", "numpy/*/tests", "numpy/tests", "numpy/_pyinstaller",
                 "numpy/typing/tests")
_PRUNE = {
    "onnxruntime": ("onnxruntime/transformers", "onnxruntime/quantization",
                    "onnxruntime/tools", "onnxruntime/datasets"),
    "openvino": ("openvino/libs/libopenvino_intel_gpu_plugin.so",
                 "openvino/libs/libopenvino_intel_npu_plugin.so",
                 "openvino/libs/libopenvino_*paddle_frontend.so*",
                 "openvino/libs/libopenvino_*pytorch_frontend.so*",
                 "openvino/libs/libopenvino_*tensorflow*_frontend.so*",
                 "openvino/libs/libopenvino_*jax_frontend.so*",
                 "openvino/libs/libopenvino_*gguf_frontend.so*",
                 "openvino/include", "openvino/tools"),
    "opencv": ("cv2/data",),
    "null": (),
}
# the glibc of each Lambda Python runtime's OS (python3.9-3.11: Amazon Linux 2;
# python3.12 onwards: Amazon Linux 2023)
_RUNTIME_GLIBC = {(3, 9): (2, 26), (3, 10): (2, 26), (3, 11): (2, 26)}
_AL2023_GLIBC = (2, 34)


@dataclass(frozen=True)
class ZipFacts:
    path: Path
    size_bytes: int
    unzipped_bytes: int
    files: int


def requirements(backend: str) -> list[str]:
    """pip requirements of the runtime layer: each distribution at the version installed
    here (so the function computes what the tool's own backend does), else unpinned."""
    if backend not in ENGINE_DISTRIBUTIONS:
        raise ConfigError(f"no runtime layer for backend {backend!r}",
                          hint=f"use one of {', '.join(ENGINE_DISTRIBUTIONS)}")
    pinned = []
    for dist in ENGINE_DISTRIBUTIONS[backend]:
        try:
            pinned.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pinned.append(dist)
    return pinned


def default_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_platforms() -> tuple[str, ...]:
    # pip takes a manylinux_2_X tag to include every older one; 2_28 is what current
    # wheels of the engines need (and what this machine runs), see glibc_warnings
    return ("manylinux_2_28_x86_64",)


def build_runtime_layer(backend: str, python_version: str, platforms: tuple[str, ...],
                        out: Path, *, cache: Any, progress: Any) -> tuple[ZipFacts, dict]:
    """``out`` = the runtime layer zip, built once per (requirements, Python, platforms)
    and kept in the asset cache (kind ``layer``); returns its facts and build meta."""
    from mlperf_pilot.assets.cache import BuildResult

    reqs = requirements(backend)
    recipe = {"layer": "runtime", "version": 1, "requirements": reqs,
              "python": python_version, "platforms": list(platforms),
              "prune": list(_PRUNE_COMMON + _PRUNE[backend])}

    def build(folder: Path) -> BuildResult:
        with progress.task(f"runtime layer: pip install {' '.join(reqs)} "
                           f"(Python {python_version}, {', '.join(platforms)})"):
            target = folder / "build" / "python"
            _pip_install(reqs, target, python_version, platforms)
            removed = prune(target, _PRUNE_COMMON + _PRUNE[backend])
            tags = wheel_tags(target)
            facts = write_zip(folder / "runtime.zip", folder / "build")
            shutil.rmtree(folder / "build")
        return BuildResult(main="runtime.zip",
                           source=f"pip install {' '.join(reqs)} (Python {python_version})",
                           meta={"unzipped_bytes": facts.unzipped_bytes,
                                 "files": facts.files, "pruned_bytes": removed,
                                 "wheel_tags": tags})

    entry, _built = cache.get_or_build("layer", f"runtime-{backend}", recipe, build)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry.path / "runtime.zip", out)
    meta = dict(entry.meta)
    return ZipFacts(out, out.stat().st_size, int(meta["unzipped_bytes"]),
                    int(meta["files"])), meta


def _pip_install(reqs: list[str], target: Path, python_version: str,
                 platforms: tuple[str, ...]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
               "--no-compile", "--disable-pip-version-check", "--only-binary=:all:",
               "--target", str(target), "--python-version", python_version,
               "--implementation", "cp"]
    for platform in platforms:
        command += ["--platform", platform]
    done = subprocess.run([*command, *reqs], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise AssetError(
            f"pip could not install the runtime layer ({' '.join(reqs)}) for Python "
            f"{python_version} on {', '.join(platforms)}: "
            f"{lines[0] if lines else done.stderr.strip()[-200:]}",
            hint="check --python-version/--platform (wheels must exist for them) and that "
            "PyPI can be reached")


def prune(root: Path, patterns: tuple[str, ...]) -> int:
    """Remove the files and folders under ``root`` matching ``patterns``; bytes freed."""
    freed = 0
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if not path.exists() and not path.is_symlink():
            continue  # inside a folder removed already
        relative = path.relative_to(root).as_posix()
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
            continue
        if path.is_dir() and not path.is_symlink():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        else:
            freed += path.lstat().st_size
            path.unlink()
    return freed


def wheel_tags(root: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags (from its .dist-info/WHEEL)."""
    tags: dict[str, list[str]] = {}
    for wheel in sorted(root.glob("*.dist-info/WHEEL")):
        lines = wheel.read_text(encoding="utf-8", errors="replace").splitlines()
        tags[wheel.parent.name.split("-")[0]] = [
            line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    return tags


def glibc_warnings(tags: dict[str, list[str]], python_version: str) -> list[str]:
    """Wheels needing a newer glibc than the Lambda runtime of ``python_version`` has."""
    major, minor = (int(p) for p in python_version.split(".")[:2])
    runtime = _RUNTIME_GLIBC.get((major, minor), _AL2023_GLIBC)
    found = []
    for dist, dist_tags in tags.items():
        needed = []
        for tag in dist_tags:
            match = re.search(r"manylinux_(\d+)_(\d+)_", tag)
            if match:
                needed.append((int(match[1]), int(match[2])))
            elif "manylinux2014" in tag:
                needed.append((2, 17))
        if needed and min(needed) > runtime:
            low = min(needed)
            found.append(f"{dist} needs glibc {low[0]}.{low[1]}, newer than Lambda's "
                         f"python{python_version} runtime has ({runtime[0]}.{runtime[1]}): "
                         "package with --python-version 3.12 (Amazon Linux 2023) for AWS; "
                         "local functions are not affected")
    return found


def write_zip(path: Path, root: Path, *, under: str = "") -> ZipFacts:
    """A reproducible zip of the tree ``root`` (sorted entries, fixed timestamps, the
    files' modes); ``under``: a folder inside the zip to put the tree in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    unzipped = count = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            name = (Path(under) / file.relative_to(root)).as_posix() if under else \
                file.relative_to(root).as_posix()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((file.stat().st_mode & 0o777) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with file.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            unzipped += file.stat().st_size
            count += 1
    os.replace(tmp, path)
    return ZipFacts(path, path.stat().st_size, unzipped, count)


def limit_warnings(zips: list[ZipFacts]) -> list[str]:
    """Lambda's limits, said plainly: zips over the direct upload size, the unzipped
    function + layers over 250 MB."""
    found = []
    for facts in zips:
        if facts.size_bytes > DIRECT_UPLOAD_LIMIT:
            found.append(f"{facts.path.name} is {facts.size_bytes / 2**20:.1f} MiB zipped, "
                         f"over Lambda's {DIRECT_UPLOAD_LIMIT // 2**20} MiB direct upload "
                         "limit: deploy must upload it through S3")
    total = sum(f.unzipped_bytes for f in zips)
    if total > UNZIPPED_LIMIT:
        found.append(f"the function and its layers are {total / 2**20:.1f} MiB unzipped, over "
                     f"Lambda's {UNZIPPED_LIMIT // 2**20} MiB limit: AWS will refuse them "
                     "(leave the model layer out with --no-model-layer, the function then "
                     "downloads the model from the bucket)")
    return found


__all__ = ["DIRECT_UPLOAD_LIMIT", "ENGINE_DISTRIBUTIONS", "LAYERS_LIMIT", "UNZIPPED_LIMIT",
           "ZipFacts", "build_runtime_layer", "default_platforms", "default_python",
           "glibc_warnings", "limit_warnings", "prune", "requirements", "wheel_tags",
           "write_zip"]

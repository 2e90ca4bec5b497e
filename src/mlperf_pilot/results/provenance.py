"""The versions of every component a result depends on, saved with every result."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

_PACKAGES = (
    "mlperf-pilot", "mlcommons-loadgen", "onnxruntime", "onnxruntime-gpu", "numpy",
    "pillow", "opencv-python-headless", "opencv-python", "torch", "pydantic",
)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    found = {}
    for name in (*_PACKAGES, *extra):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_versions(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    import os

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(extra),
    }

"""Podman for the tests marked container, and the local base image they build on.

No registry is reachable on our machines, so the base is made here: a minimal Debian
bookworm (debootstrap ``--variant=minbase`` with python3-minimal, from the mirror apt is
configured with) imported into podman's storage as ``localhost/mlperf-pilot-base:bookworm``
(~2.5 min, once: podman's storage keeps it between runs). ``ContainerUnavailable`` says
why podman cannot run here (the tests skip with it).

Run on its own to make the base ahead of the tests: ``python tests/servers/container_base.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "localhost/mlperf-pilot-base:bookworm"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ContainerUnavailable(RuntimeError):
    """Podman cannot build or run containers here; the message says why."""


def _run(argv: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)  # type: ignore[call-overload]


def _tail(done: subprocess.CompletedProcess[str], lines: int = 3) -> str:
    text = (done.stderr or done.stdout or "").strip().splitlines()
    return " | ".join(text[-lines:]) or f"exit {done.returncode}"


def check_podman() -> None:
    """Podman is installed and can start a container (a user namespace, a runtime)."""
    if shutil.which("podman") is None:
        raise ContainerUnavailable("podman is not installed (scripts/podman-setup installs "
                                   "it from Debian, as root)")
    if Path("/proc/sys/user/max_user_namespaces").exists() and \
            Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
        raise ContainerUnavailable("user namespaces are disabled (user.max_user_namespaces=0)")
    info = _run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], 60)
    if info.returncode != 0:
        raise ContainerUnavailable(f"podman info failed: {_tail(info)}")


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#"):
                continue
            match = re.match(r"URIs:\s*(\S+)", line) or re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)",
                                                                 line)
            if match and "security" not in match.group(1):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def ensure_base(image: str = BASE_IMAGE) -> float:
    """Make the local base image unless podman's storage has it; the seconds it took (0.0
    when it was there)."""
    check_podman()
    if _run(["podman", "image", "exists", image], 60).returncode == 0:
        return 0.0
    if shutil.which("debootstrap") is None:
        raise ContainerUnavailable("debootstrap is not installed (scripts/podman-setup)")
    if os.geteuid() != 0:
        raise ContainerUnavailable("making the base image with debootstrap needs root")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlperf-pilot-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        done = _run(["debootstrap", "--variant=minbase", "--include=python3-minimal", SUITE,
                     str(rootfs), debian_mirror()], 1200)
        if done.returncode != 0:
            raise ContainerUnavailable(f"debootstrap failed: {_tail(done)}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = _run(["podman", "import", "-", image], 600, stdin=tar.stdout)
        tar.wait(timeout=600)
        if imported.returncode != 0 or tar.returncode != 0:
            raise ContainerUnavailable(f"podman import failed: {_tail(imported)}")
    return time.perf_counter() - started


if __name__ == "__main__":
    try:
        seconds = ensure_base()
    except ContainerUnavailable as exc:
        sys.exit(f"cannot make {BASE_IMAGE}: {exc}")
    print(f"{BASE_IMAGE}: " + (f"made in {seconds:.0f} s" if seconds else "there already"))

"""A tool's own virtual environment for the tests: created once, cached, shared.

Some servers the tests start (MLServer, MLflow) pin versions that clash with the project's
venv, so they run from a separate one. ``SideVenv(...).python()`` returns the python of
that venv, creating it on first use:

- where: ``$<env_var>`` if set, else ``<user cache dir>/mlperf-pilot-tests/<name>``;
- a file lock next to it, so that parallel test processes build it once;
- a marker file inside it, written only after every install step succeeded and holding
  the requirements, so a half-built or outdated venv is rebuilt, never used.

A failure is remembered for the rest of the process, so that each test does not retry the
install. ``main(venv)`` is the command line of the ``scripts/*-venv`` wrappers: it builds
the venv (or finds it) and prints its python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "mlperf-pilot-venv.json"
LOG = "mlperf-pilot-venv-install.log"
LOCK_TIMEOUT_S = 1800.0
PIP_TIMEOUT_S = 1500.0


class VenvUnavailable(RuntimeError):
    """The venv could not be created here (no package index, a failed install...)."""


@dataclass
class SideVenv:
    """One cached venv: its cache name, the variable that overrides where it lives, what
    it holds and the words the messages use for it ("MLServer's venv")."""

    name: str
    env_var: str
    requirements: tuple[str, ...]
    label: str
    _failure: VenvUnavailable | None = field(default=None, init=False, repr=False)

    def directory(self) -> Path:
        override = os.environ.get(self.env_var)
        if override:
            return Path(override).expanduser().resolve()
        import platformdirs

        return Path(platformdirs.user_cache_dir("mlperf-pilot-tests")) / self.name

    def ready(self, root: Path | None = None) -> bool:
        root = root or self.directory()
        marker = root / MARKER
        if not marker.is_file() or not _python_of(root).exists():
            return False
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return recorded.get("requirements") == list(self.requirements)

    def python(self) -> Path:
        """The venv's python, creating the venv first if needed (VenvUnavailable, with the
        cause, where it cannot be created)."""
        if self._failure is not None:
            raise self._failure
        root = self.directory()
        if self.ready(root):
            return _python_of(root)
        from filelock import FileLock, Timeout

        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(root.parent / f"{root.name}.lock"), timeout=LOCK_TIMEOUT_S):
                if not self.ready(root):  # another process may have built it meanwhile
                    self._build(root)
        except Timeout as exc:
            self._failure = VenvUnavailable(
                f"waited {LOCK_TIMEOUT_S:.0f} s for the lock on {root}")
            raise self._failure from exc
        except VenvUnavailable as exc:
            self._failure = exc
            raise
        return _python_of(root)

    def build_info(self) -> dict[str, object]:
        """The marker's record (requirements, python, seconds the build took)."""
        return json.loads((self.directory() / MARKER).read_text(encoding="utf-8"))

    def _build(self, root: Path) -> None:
        """Create the venv at ``root`` from scratch; the marker is written last."""
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        log = root.parent / f"{root.name}-{LOG}"
        log.write_text("", encoding="utf-8")
        started = time.monotonic()
        _run_logged("python -m venv", [sys.executable, "-m", "venv", str(root)], log, 300.0)
        pip = [str(_python_of(root)), "-m", "pip", "install", "--disable-pip-version-check",
               "--no-input"]
        _run_logged(f"pip install {' '.join(self.requirements)}",
                    [*pip, *self.requirements], log, PIP_TIMEOUT_S)
        (root / MARKER).write_text(json.dumps({
            "requirements": list(self.requirements),
            "python": sys.version.split()[0],
            "seconds": round(time.monotonic() - started, 1),
        }) + "\n", encoding="utf-8")


def _python_of(root: Path) -> Path:
    return root / "bin" / "python"


def _run_logged(what: str, argv: list[str], log: Path, timeout: float) -> None:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(argv)}\n")
        handle.flush()
        try:
            completed = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT,
                                       timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise VenvUnavailable(f"{what} ran past {timeout:.0f} s; see {log}") from exc
    if completed.returncode != 0:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = [line.strip() for line in lines if not line.startswith("$ ")][-3:]
        raise VenvUnavailable(f"{what} failed (exit {completed.returncode}; log {log}): "
                              + " | ".join(tail))


def main(venv: SideVenv) -> int:
    started = time.monotonic()
    try:
        python = venv.python()
    except VenvUnavailable as exc:
        print(f"error: {venv.label} could not be created: {exc}", file=sys.stderr)
        return 1
    print(python)
    print(f"ready in {time.monotonic() - started:.1f} s "
          f"(built in {venv.build_info()['seconds']} s)", file=sys.stderr)
    return 0

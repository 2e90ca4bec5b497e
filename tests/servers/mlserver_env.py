"""MLServer's own virtual environment for the tests: created once, cached, shared.

MLServer pins versions (fastapi, starlette, pydantic, protobuf...) that clash with ours, so
it never goes into the project's venv. ``venv_python()`` returns the python of a separate
venv holding ``REQUIREMENTS``, creating it on first use (tests/servers/side_venv.py: a
file lock, a marker written last, a failure remembered for the process):

- where: ``$MLPERF_PILOT_MLSERVER_VENV`` if set, else
  ``<user cache dir>/mlperf-pilot-tests/mlserver-<version>``.

Run ``python tests/servers/mlserver_env.py`` (or ``scripts/mlserver-venv``) to build it
ahead of the tests, as ``.ci/run`` does; it prints the venv's python.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``servers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.side_venv import SideVenv, VenvUnavailable, main

MLSERVER_VERSION = "1.7.1"
# onnxruntime and numpy at the versions the project's venv resolves, so that MLServer and
# the local reference session run the same kernels
REQUIREMENTS = (f"mlserver=={MLSERVER_VERSION}", "onnxruntime==1.32.0", "numpy==2.4.6")
ENV_VAR = "MLPERF_PILOT_MLSERVER_VENV"

VENV = SideVenv(name=f"mlserver-{MLSERVER_VERSION}", env_var=ENV_VAR,
                requirements=REQUIREMENTS, label="MLServer's test venv")

__all__ = ["ENV_VAR", "MLSERVER_VERSION", "REQUIREMENTS", "VENV", "VenvUnavailable",
           "build_info", "venv_dir", "venv_python"]


def venv_dir() -> Path:
    return VENV.directory()


def venv_python() -> Path:
    """The python of MLServer's venv, creating the venv first if needed.

    Raises VenvUnavailable with the cause when it cannot be created; the failure is
    remembered for the rest of the process so that each test does not retry the install.
    """
    return VENV.python()


def build_info() -> dict[str, object]:
    """The marker's record (requirements, python, seconds the build took)."""
    return VENV.build_info()


if __name__ == "__main__":
    sys.exit(main(VENV))

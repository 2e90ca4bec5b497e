"""MLflow's own virtual environment for the tests: created once, cached, shared.

The full ``mlflow`` package (its tracking server, ``mlflow server``) pins versions that the
project's venv must not take, so the server the tests start runs from a separate venv
(tests/servers/side_venv.py): ``$MLPERF_PILOT_MLFLOW_VENV`` if set, else
``<user cache dir>/mlperf-pilot-tests/mlflow-<version>`` (~110 s and ~850 MB fresh).

Run ``python tests/servers/mlflow_env.py`` (or ``scripts/mlflow-venv``) to build it ahead
of the tests, as ``.ci/run`` does; it prints the venv's python.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``servers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.side_venv import SideVenv, VenvUnavailable, main

# 3.18.0 does not install (its mlflow-skinny pin is not served); 3.17.2 does
MLFLOW_VERSION = "3.17.2"
REQUIREMENTS = (f"mlflow=={MLFLOW_VERSION}",)

VENV = SideVenv(name=f"mlflow-{MLFLOW_VERSION}", env_var="MLPERF_PILOT_MLFLOW_VENV",
                requirements=REQUIREMENTS, label="MLflow's test venv")

__all__ = ["MLFLOW_VERSION", "REQUIREMENTS", "VENV", "VenvUnavailable", "venv_python"]


def venv_python() -> Path:
    """The python of MLflow's venv, creating the venv first if needed (VenvUnavailable,
    with the cause, where it cannot be created)."""
    return VENV.python()


if __name__ == "__main__":
    sys.exit(main(VENV))

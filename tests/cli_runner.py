"""``mlperf-pilot ARGS`` run in-process by the tests (the ``cli`` fixture of
tests/conftest.py): the exit code and what it printed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from mlperf_pilot.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def error_line(self) -> str:
        return next(line for line in self.err.splitlines() if line.startswith("error:"))

    def hint_line(self) -> str:
        return next(line for line in self.err.splitlines() if line.startswith("hint:"))


Cli = Callable[..., Result]


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Cli:
    """A function running ``mlperf-pilot ARGV`` (each argument made a string)."""

    def run(*argv: object) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run

"""MLPerf's vocabulary as enums, the one spelling of each word everywhere.

Scenarios and modes are spelled as LoadGen spells them; statuses are the words our
records and the official checker use. Every module compares against these members,
never against bare strings (they are ``str`` enums, so JSON and YAML read and write the
plain words).
"""

from __future__ import annotations

import enum

from mlperf_pilot.errors import ConfigError


class Scenario(str, enum.Enum):
    """The four LoadGen scenarios, spelled as LoadGen spells them."""

    SINGLE_STREAM = "SingleStream"
    MULTI_STREAM = "MultiStream"
    SERVER = "Server"
    OFFLINE = "Offline"

    @classmethod
    def parse(cls, text: str) -> Scenario:
        key = text.strip().lower().replace("-", "").replace("_", "")
        for member in cls:
            if member.value.lower() == key:
                return member
        raise ConfigError(
            f"unknown scenario {text!r}",
            hint="use one of SingleStream, MultiStream, Server, Offline, or all",
        )

    def __str__(self) -> str:
        return self.value


class Mode(str, enum.Enum):
    """What a LoadGen run measures."""

    ACCURACY = "accuracy"
    PERFORMANCE = "performance"

    @classmethod
    def parse(cls, text: str) -> Mode:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ConfigError(
                f"unknown mode {text!r}", hint="use accuracy, performance or both"
            ) from None

    def __str__(self) -> str:
        return self.value


class ExecutionMode(str, enum.Enum):
    """How long and how official a run is.

    ``test``: short runs (``test_duration_ms``) with targets estimated from a warm-up when
    none are given; results are for trying things out.
    ``find``: short performance runs that measure what the system sustains and write the
    targets file (calibration).
    ``valid``: the official durations and query counts from mlperf.conf, with targets
    from the flags, else the targets file, else the warm-up; an INVALID run is rerun
    with an adjusted target (``max_reruns``).
    """

    TEST = "test"
    FIND = "find"
    VALID = "valid"

    def __str__(self) -> str:
        return self.value


class Device(str, enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"

    @classmethod
    def parse(cls, text: str) -> Device:
        key = text.strip().lower()
        if key == "gpu":  # the reference flow's spelling
            return cls.CUDA
        try:
            return cls(key)
        except ValueError:
            raise ConfigError(
                f"unknown device {text!r}", hint="use cpu, cuda (or gpu, an alias of cuda)"
            ) from None

    def __str__(self) -> str:
        return self.value


class RunStatus(str, enum.Enum):
    """What one LoadGen test concluded."""

    VALID = "VALID"
    INVALID = "INVALID"  # it ran, but LoadGen or our checks found it does not count
    FAILED = "FAILED"  # it did not complete (exception, crash, interrupt)

    def __str__(self) -> str:
        return self.value


class ComplianceStatus(str, enum.Enum):
    """A compliance test's verdict; INDICATIVE only in test mode (a band short runs
    cannot judge was missed: not a failure)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INDICATIVE = "INDICATIVE"

    def __str__(self) -> str:
        return self.value


class Severity(str, enum.Enum):
    """How much a checker finding matters."""

    ERROR = "error"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


ALL_SCENARIOS: tuple[Scenario, ...] = (
    Scenario.SINGLE_STREAM,
    Scenario.MULTI_STREAM,
    Scenario.SERVER,
    Scenario.OFFLINE,
)

# the compliance tests this tool runs (a round may require others: they are reported as
# not run); `compliance_tests` settings and `mlperf-pilot compliance TESTS` take these
COMPLIANCE_TESTS: tuple[str, ...] = ("TEST01", "TEST04", "TEST05")

__all__ = ["ALL_SCENARIOS", "COMPLIANCE_TESTS", "ComplianceStatus", "Device",
           "ExecutionMode", "Mode", "RunStatus", "Scenario", "Severity"]

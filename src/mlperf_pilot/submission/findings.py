"""A finding: one rule a submission breaks (or nearly breaks), and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlperf_pilot.vocab import Severity

# aliases kept for code not yet moved to Severity (compare with the members)
ERROR = Severity.ERROR
WARNING = Severity.WARNING


@dataclass(frozen=True)
class Finding:
    severity: Severity  # the plain words "error"/"warning" are accepted (and converted)
    rule: str  # e.g. "performance.min-duration"
    message: str
    fix: str = ""
    path: str = ""  # the file or folder concerned, relative to the submission root
    result: str = ""  # "<division>/<submitter>/<system>/<benchmark>/<scenario>", or ""

    def __post_init__(self) -> None:
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass
class Findings:
    """Collects findings for one context (a result, or the whole tree)."""

    result: str = ""
    items: list[Finding] = field(default_factory=list)

    def error(self, rule: str, message: str, fix: str = "", path: str = "") -> None:
        self.items.append(Finding(Severity.ERROR, rule, message, fix, path, self.result))

    def warning(self, rule: str, message: str, fix: str = "", path: str = "") -> None:
        self.items.append(Finding(Severity.WARNING, rule, message, fix, path, self.result))

    def add(self, severity: Severity, rule: str, message: str, fix: str = "",
            path: str = "") -> None:
        self.items.append(Finding(severity, rule, message, fix, path, self.result))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.is_error]

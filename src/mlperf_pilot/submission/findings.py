"""A finding: one rule a submission breaks (or nearly breaks), and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    rule: str  # e.g. "performance.min-duration"
    message: str
    fix: str = ""
    path: str = ""  # the file or folder concerned, relative to the submission root
    result: str = ""  # "<division>/<submitter>/<system>/<benchmark>/<scenario>", or ""

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


@dataclass
class Findings:
    """Collects findings for one context (a result, or the whole tree)."""

    result: str = ""
    items: list[Finding] = field(default_factory=list)

    def error(self, rule: str, message: str, fix: str = "", path: str = "") -> None:
        self.items.append(Finding(ERROR, rule, message, fix, path, self.result))

    def warning(self, rule: str, message: str, fix: str = "", path: str = "") -> None:
        self.items.append(Finding(WARNING, rule, message, fix, path, self.result))

    def add(self, severity: str, rule: str, message: str, fix: str = "", path: str = "") -> None:
        self.items.append(Finding(severity, rule, message, fix, path, self.result))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.is_error]

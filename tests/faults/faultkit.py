"""Assertions shared by the fault suite (imported by its tests as ``faultkit``)."""

from __future__ import annotations

# the exit code and what ``mlperf-pilot`` printed: the same record as the ``cli`` fixture's
from cli_runner import Result as CliResult

# how many cases ended in a checked clean error (cause + fix, right exit code); the
# suite's summary line reports it
CLEAN_ERRORS: list[str] = []


def assert_clean_error(result: CliResult, code: int = 2, *, cause: str | None = None,
                       fix: str | None = None) -> None:
    """One line with the cause (``error: ...``) and one with the fix (``hint: ...``), the
    given exit code, no traceback, no "internal error". ``cause``/``fix``: substrings the
    lines must contain (case-insensitive)."""
    text = result.text
    assert result.code == code, f"exit {result.code}, expected {code}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    assert "internal error" not in text, text[-3000:]
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    hints = [ln for ln in result.err.splitlines() if ln.startswith("hint:")]
    assert errors, f"no 'error:' line in:\n{result.err[-3000:]}"
    assert hints, f"no 'hint:' line (the fix) in:\n{result.err[-3000:]}"
    if cause is not None:
        assert cause.lower() in errors[0].lower(), f"{cause!r} not in {errors[0]!r}"
    if fix is not None:
        assert fix.lower() in " ".join(hints).lower(), f"{fix!r} not in {hints!r}"
    CLEAN_ERRORS.append(errors[0])

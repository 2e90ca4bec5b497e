"""Which stored tests a command takes: ``--model --scenario --status --since --kind
--last`` as one decorator, ``@filter_options``, which passes ``filters: TestFilter``;
`results list`/`export` use it, and so can `report`. ``TestFilter.select(store, ids)``
asks the store for them. (Where the store is: ``results_cmd.store_options``.)
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from mlperf_pilot.vocab import ALL_SCENARIOS, RunStatus

if TYPE_CHECKING:
    from mlperf_pilot.results.store import ResultsStore, StoredTest

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS_S = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """``2026-12-01``, ``2026-12-01T10:30`` (UTC unless it says its offset) or an age:
    ``30m``, ``12h``, ``3d``, ``2w`` before ``now``. ValueError otherwise."""
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS_S[match.group(2).lower()]
        base = now or _dt.datetime.now(_dt.timezone.utc)
        return base - _dt.timedelta(seconds=seconds)
    value = _dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)


class _Since(click.ParamType):
    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> _dt.datetime:
        if isinstance(value, _dt.datetime):
            return value
        try:
            return parse_since(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a date/time (2026-12-01, 2026-12-01T10:30) "
                      "nor an age (30m, 12h, 3d, 2w)", param, ctx)


@dataclass(frozen=True)
class TestFilter:
    """Which stored tests a command takes (every filter given must match)."""

    __test__ = False  # not a pytest class

    model: str | None = None
    scenario: str | None = None
    status: str | None = None
    since: _dt.datetime | None = None
    kind: str | None = None
    last: int | None = None

    def select(self, store: ResultsStore, ids: Sequence[str] = ()) -> list[StoredTest]:
        return store.select(ids=tuple(ids), last=self.last, model=self.model,
                            scenario=self.scenario, status=self.status, since=self.since,
                            kind=self.kind)

    def to_json(self) -> dict[str, Any]:
        """The filters given (``since`` as ISO 8601), for --json output."""
        return {name: value.isoformat() if isinstance(value, _dt.datetime) else value
                for name, value in (("model", self.model), ("scenario", self.scenario),
                                    ("status", self.status), ("since", self.since),
                                    ("kind", self.kind), ("last", self.last))
                if value is not None}

    def describe(self) -> str:
        """``model=resnet50, status=VALID`` (empty: no filter)."""
        parts = [f"{name}={value}" for name, value in (
            ("model", self.model), ("scenario", self.scenario), ("status", self.status),
            ("since", self.since.isoformat() if self.since else None),
            ("kind", self.kind), ("last", self.last)) if value is not None]
        return ", ".join(parts)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--model --scenario --status --since --kind --last → ``filters: TestFilter``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["filters"] = TestFilter(
            model=kwargs.pop("model"), scenario=kwargs.pop("scenario"),
            status=kwargs.pop("status"), since=kwargs.pop("since"),
            kind=kwargs.pop("kind"), last=kwargs.pop("last"))
        return func(*args, **kwargs)

    options = (
        click.option("--model", metavar="NAME", help="Only tests of this catalog model."),
        click.option("--scenario", type=click.Choice([s.value for s in ALL_SCENARIOS],
                                                     case_sensitive=False),
                     metavar="SCENARIO",
                     help="Only tests of this scenario: "
                          f"{', '.join(s.value for s in ALL_SCENARIOS)} (any case)."),
        click.option("--status", type=click.Choice([s.value for s in RunStatus],
                                                   case_sensitive=False),
                     metavar="STATUS",
                     help="Only tests with this status: "
                          f"{', '.join(s.value for s in RunStatus)} (any case)."),
        click.option("--since", type=_Since(),
                     help="Only tests started since then: a UTC date/time (2026-12-01, "
                          "2026-12-01T10:30) or an age (30m, 12h, 3d, 2w)."),
        click.option("--kind", metavar="KIND",
                     help="Only tests of this kind: run, attempt, compliance, bench, sweep, "
                          "serverless, import."),
        click.option("--last", type=click.IntRange(min=1), metavar="N",
                     help="Only the N most recent of them."),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


__all__ = ["TestFilter", "filter_options", "parse_since"]

"""The report's one self-contained HTML page: a pure function of cards, pictures and rows.

Nothing on the page comes from elsewhere: the CSS is inline, every picture is a
``data:image/png;base64`` URI, there is no script, font, link or URL to fetch, so the
page opens offline and from a file; its Content-Security-Policy (:data:`CSP`) says so
to the browser, which blocks (and reports) anything else. Every text shown is escaped
(:func:`html.escape`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import struct
from collections.abc import Sequence

from mlperf_pilot.report.plots import Picture

# the page's policy: no script, no connection, pictures only from data: URIs
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;padding:1.2em 2em;color:#212121;background:#fafafa}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .5em;
border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1em;margin:.2em 0 .4em}
.meta{color:#616161;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;background:#fff}
th,td{border:1px solid #e0e0e0;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.9em;word-break:break-all}
.status{display:inline-block;padding:.05em .5em;border-radius:.8em;font-size:.85em;
font-weight:600;color:#fff}.VALID{background:#2e7d32}.INVALID{background:#e65100}
.FAILED{background:#b71c1c}.other{background:#616161}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:.8em 1em;
margin:1em 0;box-shadow:0 1px 2px rgba(0,0,0,.05)}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.4em 0;
font-size:.88em}.card dt{color:#616161}.card dd{margin:0}
.reasons{margin:.3em 0;padding-left:1.3em;font-size:.88em}.reasons li{margin:.1em 0}
.note{color:#616161;font-size:.85em;font-style:italic}
figure{margin:.6em 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eee;background:#fff}
figcaption{font-size:.8em;color:#616161;max-width:60em}
"""


@dataclasses.dataclass(frozen=True)
class Card:
    """A test's summary: its id, status, headline, reasons and facts (label → text)."""

    test_id: str
    title: str
    status: str
    headline: str
    facts: Sequence[tuple[str, str]]
    reasons: Sequence[str] = ()
    not_submittable: Sequence[str] = ()
    notes: Sequence[str] = ()
    pictures: Sequence[Picture] = ()


@dataclasses.dataclass(frozen=True)
class AccuracyRow:
    test_id: str
    model: str
    backend: str
    scenario: str
    metric: str
    value: float
    target: float | None
    meets_target: bool | None
    samples: int
    text: str


@dataclasses.dataclass(frozen=True)
class BestRow:
    """A sweep's best point in one scenario (``report --sweep``)."""

    scenario: str
    point: str
    settings: str
    command: str  # the `mlperf-pilot run` the point equals
    metric: str
    status: str
    test_id: str


@dataclasses.dataclass(frozen=True)
class SweepSection:
    """``report --sweep``: the sweep, its best point per scenario, the metric across each
    swept key and the throughput/latency Pareto fronts (report.sweep makes it)."""

    sweep_id: str
    executor: str
    keys: Sequence[str]
    counts: str  # "3 done, 1 failed"
    points: int
    best: Sequence[BestRow] = ()
    pictures: Sequence[Picture] = ()  # the metric across each swept key
    fronts: Sequence[Picture] = ()  # throughput vs p99 latency, the front highlighted
    notes: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class Page:
    title: str
    generated: str  # when and by what: "2025-06-05 10:15 UTC, mlperf-pilot 0.9"
    cards: Sequence[Card]
    comparisons: Sequence[Picture] = ()
    accuracy: Sequence[AccuracyRow] = ()
    notes: Sequence[str] = ()
    sweep: SweepSection | None = None


def render_page(page: Page) -> str:
    """The whole HTML document."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             # nothing may load from anywhere: a violation is blocked and reported
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             f"<title>{_e(page.title)}</title>", f"<style>{_CSS}</style>", "</head>",
             "<body>", f"<h1>{_e(page.title)}</h1>",
             f'<p class="meta">{_e(page.generated)} · {len(page.cards)} '
             f"test{'s' if len(page.cards) != 1 else ''}</p>"]
    parts += [f'<p class="note">{_e(note)}</p>' for note in page.notes]
    if page.sweep is not None:
        parts += _sweep(page.sweep)
    parts += ['<h2 id="tests">Tests</h2>', _tests_table(page.cards)]
    if page.comparisons:
        parts.append('<h2 id="comparisons">Comparisons</h2>')
        parts += [_figure(picture) for picture in page.comparisons]
    parts.append('<h2 id="accuracy">Accuracy</h2>')
    parts.append(_accuracy_table(page.accuracy) if page.accuracy else
                 '<p class="note">no accuracy test among these tests</p>')
    parts.append('<h2 id="cards">Each test</h2>')
    parts += [_card(card) for card in page.cards]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _tests_table(cards: Sequence[Card]) -> str:
    rows = ["<table><thead><tr><th>test id</th><th>test</th><th>status</th>"
            "<th>result</th></tr></thead><tbody>"]
    for card in cards:
        rows.append(f'<tr data-test-id="{_e(card.test_id)}"><td><a href="#{_anchor(card)}">'
                    f"<code>{_e(card.test_id)}</code></a></td><td>{_e(card.title)}</td>"
                    f"<td>{_status(card.status)}</td><td>{_e(card.headline)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _sweep(sweep: SweepSection) -> list[str]:
    parts = [f'<h2 id="sweep">Sweep <code>{_e(sweep.sweep_id)}</code></h2>',
             f'<p class="meta">{sweep.points} point(s) on {_e(sweep.executor)}: '
             f"{_e(sweep.counts)} · swept: {_e(', '.join(sweep.keys) or 'nothing')}</p>",
             '<h3 id="sweep-best">Best configuration per scenario</h3>']
    if sweep.best:
        rows = ['<table class="sweep-best"><thead><tr><th>scenario</th><th>point</th>'
                "<th>settings</th><th>metric</th><th>status</th><th>command</th>"
                "<th>test id</th></tr></thead><tbody>"]
        rows += [f'<tr data-point="{_e(b.point)}"><td>{_e(b.scenario)}</td>'
                 f"<td>{_e(b.point)}</td><td>{_e(b.settings)}</td><td>{_e(b.metric)}</td>"
                 f"<td>{_status(b.status)}</td><td><code>{_e(b.command)}</code></td>"
                 f"<td><code>{_e(b.test_id)}</code></td></tr>" for b in sweep.best]
        rows.append("</tbody></table>")
        parts.append("\n".join(rows))
    else:
        parts.append('<p class="note">no point has a performance result</p>')
    parts += [f'<p class="note">{_e(note)}</p>' for note in sweep.notes]
    if sweep.pictures:
        parts.append('<h3 id="sweep-keys">The metric across each swept key</h3>')
        parts += [_figure(picture) for picture in sweep.pictures]
    if sweep.fronts:
        parts.append('<h3 id="sweep-pareto">Throughput vs latency: the Pareto front</h3>')
        parts += [_figure(picture) for picture in sweep.fronts]
    return parts


def _accuracy_table(rows: Sequence[AccuracyRow]) -> str:
    out = ["<table><thead><tr><th>test id</th><th>model</th><th>backend</th>"
           "<th>scenario</th><th>metric</th><th>value</th><th>target</th><th>meets target</th>"
           "<th>samples</th><th>as scored</th></tr></thead><tbody>"]
    for row in rows:
        target = "" if row.target is None else f"{row.target:.3f}"
        meets = {True: "yes", False: "no", None: "n/a"}[row.meets_target]
        out.append(f"<tr><td><code>{_e(row.test_id)}</code></td><td>{_e(row.model)}</td>"
                   f"<td>{_e(row.backend)}</td><td>{_e(row.scenario)}</td>"
                   f"<td>{_e(row.metric)}</td><td class=num>{row.value:.3f}</td>"
                   f"<td class=num>{target}</td><td>{meets}</td>"
                   f"<td class=num>{row.samples}</td><td>{_e(row.text)}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _card(card: Card) -> str:
    out = [f'<section class="card" id="{_anchor(card)}" data-test-id="{_e(card.test_id)}">',
           f"<h3>{_status(card.status)} <code>{_e(card.test_id)}</code></h3>",
           f"<div>{_e(card.title)} — <strong>{_e(card.headline)}</strong></div>", "<dl>"]
    out += [f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in card.facts]
    out.append("</dl>")
    if card.reasons:
        out.append(f"<div>why {_e(card.status)}:</div>" if card.status != "VALID" else
                   "<div>notes:</div>")
        out.append(_list(card.reasons, "reasons"))
    if card.not_submittable:
        out.append("<div>not submittable:</div>")
        out.append(_list(card.not_submittable, "reasons"))
    out += [f'<p class="note">{_e(note)}</p>' for note in card.notes]
    out += [_figure(picture) for picture in card.pictures]
    out.append("</section>")
    return "\n".join(out)


def _figure(picture: Picture) -> str:
    size = _png_size(picture.png)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    data = base64.b64encode(picture.png).decode("ascii")
    return (f'<figure data-picture="{_e(picture.name)}" data-kind="{_e(picture.kind)}">'
            f'<img src="data:image/png;base64,{data}" alt="{_e(picture.alt)}"{dims}>'
            f"<figcaption>{_e(picture.title)}</figcaption></figure>")


def _png_size(png: bytes) -> tuple[int, int] | None:
    """Width and height from the PNG's IHDR chunk."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def _list(items: Sequence[str], css: str) -> str:
    return f'<ul class="{css}">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _status(status: str) -> str:
    css = status if status in ("VALID", "INVALID", "FAILED") else "other"
    return f'<span class="status {css}">{_e(status)}</span>'


def _anchor(card: Card) -> str:
    return "test-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in card.test_id)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


__all__ = ["CSP", "AccuracyRow", "BestRow", "Card", "Page", "SweepSection", "render_page"]

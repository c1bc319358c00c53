"""The report page's "Top stories" section (flows/warehouse/reportpage.py): the week's stories most outlets covered,
each with a timeline of its articles and copies (docs/stories.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

import duckdb

from flows.warehouse import database

TOP_STORIES = 8
_WIDTH, _LEFT, _RIGHT = 1120, 10, 10
# The report page's palette (flows/warehouse/reportpage.py PALETTE): this module draws in the page's style without
# importing it, as the page imports this module.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1b9e77", "#7570b3")


class Html(str):
    """A fragment already escaped."""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _short(value: Any, n: int = 110) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _text(value: Any) -> Html:
    """As the page shows values: fragments as they are, numbers grouped, times in UTC, the rest escaped."""
    if isinstance(value, Html):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Html(f"{value:,}")
    if isinstance(value, datetime):
        return Html(f'<span class="t">{value.astimezone(UTC) if value.tzinfo else value:%Y-%m-%d %H:%M}</span>')
    return Html(_e(value))


def link(url: Any, text: Any) -> Html:
    """A link only from an http(s) URL (followed when clicked, never loaded); anything else stays text."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return _text(text)
    return Html(f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">{_e(text)}</a>')


def table(headers: Sequence[str], rows: list[Sequence[Any]]) -> Html:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in r) + "</tr>" for r in rows)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{_e(note)}</p>' if note else ""
    return f"<section><h2>{_e(title)}</h2>{note_html}{body}</section>"


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rel = conn.execute(sql, params)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def timeline(name: str, members: list[dict[str, Any]], colours: dict[str, str]) -> Html:
    """One story's articles on a time line: a dot per member at its time (a ring for a copy), coloured by outlet."""
    times: list[datetime] = [m["published"] for m in members]
    first, last = min(times), max(times)
    span = (last - first).total_seconds() or 1.0
    inner = _WIDTH - _LEFT - _RIGHT
    parts = [f'<line x1="{_LEFT}" y1="20" x2="{_WIDTH - _RIGHT}" y2="20" stroke="#bbb"/>']
    for m in members:
        x = _LEFT + inner * (m["published"] - first).total_seconds() / span
        colour = colours.get(m["outlet"] or "", PALETTE[0])
        fill = "#fff" if m["is_copy"] else colour
        tip = f"{m['published']:%Y-%m-%d %H:%M} · {m['outlet'] or '-'} · {'copy' if m['is_copy'] else 'write-up'}"
        # A rect rounded to a dot: the page's marks are rects (its render check counts rect.mark).
        parts.append(f'<rect class="mark" x="{x - 6:.1f}" y="14" width="12" height="12" rx="6" fill="{fill}" '
                     f'stroke="{colour}" stroke-width="2"><title>{_e(tip)}: {_e(_short(m["title"], 100))}</title>'
                     "</rect>")
    parts.append(f'<text x="{_LEFT}" y="42">{_text(first)}</text>'
                 f'<text x="{_WIDTH - _RIGHT}" y="42" text-anchor="end">{_text(last)}</text>')
    return Html(f'<svg class="chart" data-chart="{_e(name)}" role="img" width="{_WIDTH}" height="48" '
                f'viewBox="0 0 {_WIDTH} 48" style="max-width:100%;height:auto">{"".join(parts)}</svg>')


def top_stories(conn: duckdb.DuckDBPyConnection) -> str:
    """The section: the stories of more than one article seen in the 30 days up to the newest story, most outlets
    first, each with its timeline and its members."""
    stories = _rows(conn, database.query("report_stories"), {"limit": TOP_STORIES})
    if not stories:
        return _section("Top stories", '<p class="note">No story with more than one article yet.</p>')
    members = _rows(conn, "select * from story_timeline where story_id in (select unnest($ids::bigint[])) "
                          "order by story_id, position", {"ids": [s["story_id"] for s in stories]})
    by_story: dict[int, list[dict[str, Any]]] = {}
    for m in members:
        by_story.setdefault(m["story_id"], []).append(m)
    parts = []
    for n, s in enumerate(stories):
        rows = by_story.get(s["story_id"], [])
        outlets = sorted({m["outlet"] or "" for m in rows})
        colours = {o: PALETTE[i % len(PALETTE)] for i, o in enumerate(outlets)}
        head = (f"<h3>{_e(_short(s['title'], 140))}</h3><p class=\"note\">{_text(s['articles'])} articles "
                f"({_text(s['articles'] - s['originals'])} copies), {_text(s['outlets'])} outlets, "
                f"{_e(', '.join(s['languages'] or []) or '-')}; {_e(', '.join(s['top_entities'] or []))}</p>")
        body = table(("time", "outlet", "", "article"),
                     [(m["published"], m["outlet"] or "-", "copy" if m["is_copy"] else "",
                       link(m["url"], _short(m["title"] or m["url"]))) for m in rows])
        parts.append(head + timeline(f"story-{n}", rows, colours) + body)
    return _section("Top stories", "".join(parts), "Different articles about one event, grouped as they arrived "
                                                   "(docs/stories.md): the month's stories most outlets covered. "
                                                   "Filled dots are write-ups, rings are copies.")

"""The warehouse as one self-contained HTML page: charts are inline SVG drawn here, and nothing is loaded from
anywhere (no scripts, fonts, styles or images from the network; a Content-Security-Policy forbids it too).

Every string from the warehouse (titles, feed and entity names, errors) came from the web: it is escaped, and a
link is made only from an http(s) URL, never loaded, only followed when clicked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from flows.core.owned import REPORT_TITLE, Owned, check_output, of_warehouse, writing
from flows.core.sections import SavedSearch
from flows.core.settings import WarehouseSettings
from flows.warehouse import database, savedmatches, storyreport

DAYS = 30  # the articles-per-feed chart covers this many days, ending on the latest day with an article
TOP = 15
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1b9e77", "#7570b3")
LABEL_COLOURS = {"PERSON": "#4e79a7", "ORG": "#f28e2b", "GPE": "#59a14f", "LOC": "#76b7b2", "NORP": "#b07aa1"}
STATUS_COLOURS = {"completed": "#59a14f", "staged": "#edc948", "running": "#bab0ac", "abandoned": "#e15759",
                  "failed": "#e15759"}

# Marks each chart the browser laid out with a non-empty box, so a headless-browser test can tell it rendered.
_SCRIPT = """
document.querySelectorAll('svg.chart').forEach(function (svg) {
  var box = svg.getBBox();
  var marks = svg.querySelectorAll('rect.mark').length;
  svg.setAttribute('data-rendered', box.width > 0 && box.height > 0 && marks > 0 ? 'yes' : 'no');
});
document.body.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
# Only the script above may run (by hash) and nothing may be fetched; links still work when clicked.
_CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
        "base-uri 'none'; form-action 'none'")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#f6f6f4;margin:0}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:24px;margin:6px 0 2px}h2{font-size:18px;margin:0 0 8px}
.meta{color:#666;margin-bottom:14px}.note{color:#666}
section{background:#fff;border:1px solid #e2e2de;border-radius:6px;padding:14px 18px;margin:14px 0}
.figures{display:flex;flex-wrap:wrap;gap:10px}.figure{background:#fff;border:1px solid #e2e2de;border-radius:6px;
padding:8px 14px;min-width:110px}.figure b{display:block;font-size:22px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:14px}.cols section{margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #eee;vertical-align:top}th{color:#555;font-weight:600}td.n{text-align:right}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:4px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.state{padding:1px 6px;border-radius:3px;font-size:12px;background:#eee}
.state-ok,.state-completed{background:#dff0d8}.state-failing,.state-disabled,.state-abandoned,.state-failed,
.state-bad{background:#f8d7da}.state-backing_off,.state-staged,.state-waiting{background:#fff3cd}
svg text{font:11px system-ui,sans-serif;fill:#444}.t{white-space:nowrap}
"""


class Html(str):
    """A fragment already safe to place in the page (built here, with every outside string escaped)."""


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str = ""
    colour: str = PALETTE[0]
    tip: str = ""  # shown on hover, after the label and value


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _text(value: Any) -> Html:
    """A value for the page: fragments pass through, numbers are grouped, times shown in UTC, the rest escaped."""
    if isinstance(value, Html):
        return value
    if isinstance(value, bool):
        return Html("yes" if value else "no")
    if isinstance(value, int):
        return Html(f"{value:,}")
    if isinstance(value, float):
        return Html(f"{value:,.2f}".rstrip("0").rstrip("."))
    if isinstance(value, datetime):
        return Html(f'<span class="t">{value.astimezone(UTC) if value.tzinfo else value:%Y-%m-%d %H:%M}</span>')
    return Html(_e(value))


def link(url: Any, text: Any) -> Html:
    """A plain link to an article (followed only when clicked); anything but an http(s) URL stays text."""
    try:
        ok = isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).netloc)
    except ValueError:
        ok = False
    if not ok:
        return _text(text)
    return Html(f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">{_e(text)}</a>')


def _state(value: Any) -> Html:
    slug = "".join(c for c in str(value) if c.isalnum() or c == "_")
    return Html(f'<span class="state state-{slug}">{_e(value)}</span>')


def _short(value: Any, n: int = 110) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> Html:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{_text(v)}</td>' for i, v in enumerate(r))
        + "</tr>" for r in rows)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def hbars(name: str, bars: Sequence[Bar], *, width: int = 540, label_width: int = 180) -> Html:
    """A horizontal bar chart: one labelled bar per item, longest first as given."""
    row, top = 20, 4
    height = top + row * len(bars) + 4
    peak = max((b.value for b in bars), default=0) or 1
    span = width - label_width - 150
    parts = []
    for i, b in enumerate(bars):
        y = top + i * row
        w = max(1.0, span * b.value / peak)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{_e(_short(b.label, 28))}</text>'
            f'<rect class="mark" x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" rx="2" '
            f'fill="{b.colour}"><title>{_e(b.label)}: {_text(b.value)} {_e(b.note)} {_e(b.tip)}</title></rect>'
            f'<text x="{label_width + w + 5:.1f}" y="{y + 13}">{_text(b.value)} {_e(b.note)}</text>')
    return Html(f'<svg class="chart" data-chart="{_e(name)}" role="img" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto">{"".join(parts)}</svg>')


def stacked_days(name: str, rows: Sequence[tuple[str, date, int]], colours: dict[str, str], *,
                 width: int = 1120, height: int = 260) -> Html:
    """Articles per day as columns stacked by feed, with a y axis and a date every few columns."""
    seen = [d for _, d, _ in rows]
    # Every day of the span gets a column, so a quiet day shows as a gap rather than vanishing.
    days = [date.fromordinal(o) for o in range(min(seen).toordinal(), max(seen).toordinal() + 1)] if seen else []
    per_day: dict[date, list[tuple[str, int]]] = {d: [] for d in days}
    for feed, day, n in sorted(rows, key=lambda r: r[0]):
        per_day[day].append((feed, n))
    peak = max((sum(n for _, n in v) for v in per_day.values()), default=0) or 1
    left, bottom, top = 40, 24, 8
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / max(len(days), 1)
    parts = []
    for tick in sorted({0, peak, round(peak / 2)}):
        y = top + plot_h - plot_h * tick / peak
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    every = max(1, len(days) // 10)
    # A month of 100 feeds is 3,000 marks: each feed's name escaped and colour looked up once, not per mark.
    feeds = {feed: (_e(feed), colours.get(feed, PALETTE[0])) for feed, _, _ in rows}
    mark_width = f"{step * 0.76:.1f}"
    for i, day in enumerate(days):
        x = left + i * step
        y = top + plot_h
        head = f'<rect class="mark" x="{x + step * 0.12:.1f}" y="'
        label = f"{day:%Y-%m-%d}"
        for feed, n in per_day[day]:
            h = plot_h * n / peak
            y -= h
            feed_name, colour = feeds[feed]
            parts.append(f'{head}{y:.1f}" width="{mark_width}" height="{h:.1f}" fill="{colour}">'
                         f"<title>{feed_name}, {label}: {n} articles</title></rect>")
        if i % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 6}" text-anchor="middle">{day:%b %d}</text>')
    return Html(f'<svg class="chart" data-chart="{_e(name)}" role="img" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto">{"".join(parts)}</svg>')


def legend(colours: dict[str, str]) -> Html:
    items = "".join(f'<span><span class="swatch" style="background:{c}"></span>{_e(k)}</span>'
                    for k, c in colours.items())
    return Html(f'<div class="legend">{items}</div>')


def _rows(conn: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    rel = conn.execute(database.query(name), params or None)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{_e(note)}</p>' if note else ""
    return f"<section><h2>{_e(title)}</h2>{note_html}{body}</section>"


def _feed_days(conn: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(conn, "report_feed_days", days=DAYS)
    if not rows:
        return _section("Articles per feed per day", '<p class="note">No articles stored yet.</p>')
    feeds = sorted({r["feed"] for r in rows})
    colours = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(feeds)}
    data = [(r["feed"], r["day"], r["articles"]) for r in rows]
    first, last = min(r["day"] for r in rows), max(r["day"] for r in rows)
    return _section("Articles per feed per day", stacked_days("feed-days", data, colours) + legend(colours),
                    f"Publication day (UTC), {first:%Y-%m-%d} to {last:%Y-%m-%d}: the last {DAYS} days with "
                    f"articles; {sum(r['articles'] for r in rows):,} articles from {len(feeds)} feeds.")


def _entities(conn: duckdb.DuckDBPyConnection) -> str:
    top = _rows(conn, "report_top_entities", limit=TOP)
    if top:
        bars = [Bar(f"{r['name']}", r["mentions"], f"({r['label']}, {r['articles']} articles)",
                    LABEL_COLOURS.get(r["label"], PALETTE[9])) for r in top]
        body = hbars("top-entities", bars)
    else:
        body = '<p class="note">No entities tagged yet.</p>'
    return _section("Top entities", body, "Mentions across all stored articles.")


def _surges(conn: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(conn, "report_surges", limit=TOP, min_mentions=2)
    if not rows:
        return _section("The week's surges", '<p class="note">No entity mentioned twice in a day this week.</p>')
    bars = [Bar(r["name"], r["surge_ratio"], f"× ({r['mentions']} on {r['day']:%b %d})", PALETTE[2],
                f"against a baseline of {r['baseline_7d']:g} a day") for r in rows]
    last = max(r["day"] for r in rows)
    return _section("The week's surges", hbars("surges", bars),
                    f"Mentions on a day against the 7 days before, for the week to {last:%Y-%m-%d}; "
                    "each entity on its strongest day.")


def _syndication(conn: duckdb.DuckDBPyConnection) -> str:
    rows = syndicated(conn, TOP)
    if not rows:
        return _section("Most syndicated stories", '<p class="note">No copies of a stored story found yet.</p>')
    bars = [Bar(_short(r["title"], 40), r["copies"], f"copies, {r['n_outlets']} outlets", PALETTE[0]) for r in rows]
    body = hbars("syndication", bars, width=1120, label_width=300) + table(
        ("story", "first carried by", "copies", "outlets carrying a copy", "first copy seen"),
        [(link(r["url"], _short(r["title"])), "seed corpus" if r["is_seed"] else r["original_feed"], r["copies"],
          ", ".join(str(o) for o in r["outlets"] or []), r["first_seen_at"]) for r in rows], numeric=(2,))
    return _section("Most syndicated stories", body, "Stored stories whose copies (exact or near) other outlets "
                                                     "carried.")


def syndicated(conn: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """The `limit` most copied stored stories: the best few times `limit` of story_copies are ranked first, and
    every row only when too many of those lost their original."""
    rows = _rows(conn, "report_syndication", limit=limit, ranked=4 * limit)
    return rows if len(rows) >= limit else _rows(conn, "report_syndication", limit=limit, ranked=None)


def _quality(conn: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(conn, "report_quality", limit=TOP * 2)
    if not rows:
        return _section("Paywalls and teasers", '<p class="note">No articles stored yet.</p>')
    body = table(("feed", "articles", "paywalled", "paywalled %", "teasers", "teasers %", "consent pages"),
                 [(r["feed"], r["articles"], r["paywalled"], "—" if r["paywalled_pct"] is None else r["paywalled_pct"],
                   r["teasers"], "—" if r["teaser_pct"] is None else r["teaser_pct"], r["consent_pages"])
                  for r in rows], numeric=(1, 2, 3, 4, 5, 6))
    return _section("Paywalls and teasers", body, "Per feed, the share of stored articles behind a paywall or "
                    "stored as a teaser (docs/quality.md); shares are of the articles assessed (— : none, stored "
                    "before the flags existed). Consent pages are stored but neither tagged nor used by dedup.")


def _health(conn: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(conn, "report_feed_health")
    if not rows:
        return _section("Feed health", '<p class="note">No feed fetched yet.</p>')
    body = table(("feed", "state", "failures in a row", "last success", "last attempt", "outcome", "error",
                  "fetches 7d", "failed 7d"),
                 [(r["feed"], _state(r["state"]), r["consecutive_failures"], r["last_success_at"] or "never",
                   r["last_attempt_at"], r["last_outcome"], _short(r["error"], 90), r["fetches_7d"],
                   r["failures_7d"]) for r in rows], numeric=(2, 7, 8))
    return _section("Feed health", body)


def _runs(conn: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(conn, "report_runs", limit=20)
    if not rows:
        return _section("Last runs", '<p class="note">No runs recorded yet.</p>')
    bars = [Bar(f"{r['started_at']:%m-%d %H:%M} {r['flow']}", r["articles_new"] or 0, f"new ({r['status']})",
                STATUS_COLOURS.get(r["status"], PALETTE[9])) for r in rows]

    def checks(r: dict[str, Any]) -> Html:
        if not r["checks_run"]:
            return Html("—")
        failed = r["checks_failed"] or 0
        return _state(f"{failed} of {r['checks_run']} failed") if failed else Html(f"{r['checks_run']} passed")

    body = hbars("runs", bars) + table(
        ("run", "flow", "started (UTC)", "status", "seconds", "feeds ok", "feeds failed", "new articles",
         "duplicates", "checks", "message"),
        [(r["run_id"][:8], r["flow"], r["started_at"], _state(r["status"]), r["duration_s"], r["feeds_ok"],
          r["feeds_failed"], r["articles_new"], r["duplicates"], checks(r), _short(r["message"], 90))
         for r in rows], numeric=(4, 5, 6, 7, 8))
    failed = _rows(conn, "report_checks", limit=20)
    if failed:
        body += "<h3>Failed checks</h3>" + table(
            ("run", "check", "offending rows", "sample", "checked at"),
            [(r["run_id"][:8], r["check_name"], r["offending_rows"], _short(_sample(r["sample"]), 160),
              r["checked_at"]) for r in failed], numeric=(2,))
    return _section("Last runs", body, "Newest first; checks are the warehouse invariants run after each ingest.")


def _saved(found: savedmatches.Matches) -> str:
    """Each saved search's recent matches as links; the index's state in one line when it is missing or behind."""
    hours = savedmatches.WINDOW_HOURS
    body = "".join(
        f"<h3>{_e(r.search.name)}</h3><p class=\"note\">{_e(r.search.query)}: "
        f"{savedmatches.count(r.day, r.capped)} in the last {hours} h, "
        f"{savedmatches.count(r.last_run, r.capped)} in the last run</p>"
        + (table(("article", "outlet", "date", "copies"),
                 [(link(h.url, _short(h.title or h.url)), h.feed or "seed", h.date, h.copies) for h in r.hits],
                 numeric=(3,)) if r.hits else "") for r in found.searches)
    note = f'<p class="note">{_e(found.note)}</p>' if found.note else ""
    return _section("Saved searches", note + body, f"Matches among the articles loaded in the last {hours} h and "
                                                   "by the last run, best first ([[searches]] in the config).")


def _sample(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _figures(t: dict[str, Any]) -> str:
    items = [("articles", t["articles"]), ("feeds", t["feeds"]), ("entities", t["entities"]),
             ("copies found", t["duplicates"]), ("runs", t["runs"]), ("seed texts", t["seeds"])]
    return '<div class="figures">' + "".join(
        f'<div class="figure"><b>{_text(v)}</b>{_e(k)}</div>' for k, v in items) + "</div>"


def _guarded(build: Any, conn: duckdb.DuckDBPyConnection, title: str) -> str:
    """One section, or a line saying why it cannot be shown (an older schema, a damaged view), never a crash."""
    try:
        return build(conn)
    except duckdb.Error as exc:
        return _section(title, f'<p class="note">Not available in this warehouse: '
                               f'{_e(_short(str(exc).splitlines()[0], 200))}</p>')


def render(conn: duckdb.DuckDBPyConnection, *, source: str = "", generated_at: datetime | None = None,
           saved: savedmatches.Matches | None = None) -> str:
    """The report page for the warehouse behind `conn` (read only), as one HTML string; `saved`: the saved
    searches' recent matches, a section when given."""
    generated_at = generated_at or datetime.now(UTC)
    meta = f"Generated {generated_at:%Y-%m-%d %H:%M} UTC" + (f" from {source}" if source else "")
    version = database.schema_version(conn)
    try:
        totals = _rows(conn, "report_totals")[0] if version else None
    except duckdb.Error as exc:
        totals, unreadable = None, str(exc).splitlines()[0]
    else:
        unreadable = ""
    if unreadable:
        body = _section("This warehouse cannot be read", f'<p class="note">{_e(_short(unreadable, 300))} '
                                                         f"(schema version {version}).</p>")
    elif not totals or not (totals["articles"] or totals["seeds"] or totals["runs"] or totals["feeds"]):
        body = _section("Nothing here yet", '<p>The warehouse holds no articles, feeds or runs yet. Run '
                                            '<code>newsflow ingest</code> (or <code>newsflow demo</code>), then '
                                            '<code>newsflow report</code> again.</p>')
    else:
        latest = len(database.migrations())
        old = (f'<p class="note">Schema version {version} of {latest}: the next ingest migrates it; sections '
               "that need newer tables say so.</p>") if version < latest else ""
        sections = [_saved(saved) if saved is not None else "", _guarded(storyreport.top_stories, conn, "Top stories"),
                    _guarded(_feed_days, conn, "Articles per feed per day"),
                    '<div class="cols">' + _guarded(_entities, conn, "Top entities")
                    + _guarded(_surges, conn, "The week's surges") + "</div>",
                    _guarded(_syndication, conn, "Most syndicated stories"),
                    _guarded(_quality, conn, "Paywalls and teasers"),
                    _guarded(_health, conn, "Feed health"), _guarded(_runs, conn, "Last runs")]
        body = _figures(totals) + old + "".join(sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="referrer" content="no-referrer">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{REPORT_TITLE}<style>{_CSS}</style></head>"  # how the write guard knows an earlier page
            f'<body><main><h1>newsflow</h1><div class="meta">{_e(meta)}</div>{body}</main>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def write(settings: WarehouseSettings, out: Path, *, snapshot: bool = False, owned: Owned | None = None,
          searches: Sequence[SavedSearch] = ()) -> Path:
    """Render the warehouse (read-only, briefly; the snapshot while a run holds the live file) to `out`,
    replacing it atomically so a browser never sees half a page. Returns the file that was read. `searches`: the
    saved searches whose recent matches get a section (from the search index, never failing the page).

    `out` is checked first (flows/core/owned.py): never a file the warehouse owns (`owned`, by default
    what `settings` name), a folder or device, or an existing file that is not a newsflow report page."""
    target = check_output(out, owned or of_warehouse(settings), "report")
    with database.reader(settings, snapshot=snapshot) as (path, conn):
        saved = savedmatches.recent(settings, searches, savedmatches.window(conn)) if searches else None
        page = render(conn, source=str(path), saved=saved)
    with writing() as files:
        files.temp_for(target).write_text(page, encoding="utf-8")
    return path

"""The saved searches' recent matches (`[[searches]]`), for `newsflow status` and the HTML report: per search, its
matches among the originals loaded in the last WINDOW_HOURS and among the last run's, best first.

Reading them never fails the caller: a missing, stale or unreadable index is one line (`Matches.note`), and
the matches of whatever the index holds are still shown when it is only behind. No Prefect here; a run's own
matches are published by flows/run/savedsearches.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from flows.core.errors import SearchIndexDamaged
from flows.core.searchquery import parse
from flows.core.sections import SavedSearch
from flows.core.settings import WarehouseSettings
from flows.warehouse import database, search

WINDOW_HOURS = 24
SHOWN = 10  # matches kept per search (the report lists them; status prints the first TOP)
TOP = 3
_LIMIT = 1000  # matches counted per search; more is shown as "1000+"


@dataclass(frozen=True)
class Window:
    """The articles the matches are counted among (from the warehouse, read-only)."""
    day: frozenset[int]  # loaded in the last WINDOW_HOURS
    last_run: frozenset[int]  # loaded by the last run that loaded any
    last_run_id: str | None
    note: str = ""  # why the window could not be read


@dataclass(frozen=True)
class Recent:
    search: SavedSearch
    day: int
    last_run: int
    hits: tuple[search.Hit, ...]  # the best SHOWN of either set
    capped: bool = False  # more than _LIMIT matches: the counts are lower bounds


@dataclass(frozen=True)
class Matches:
    searches: tuple[Recent, ...]
    window: Window
    note: str = ""  # one line when the index is missing, behind or unreadable


def window(conn: duckdb.DuckDBPyConnection, now: datetime | None = None) -> Window:
    """The recent originals of the warehouse behind `conn`; an empty window with a note if it cannot be read."""
    since = (now or datetime.now(UTC)) - timedelta(hours=WINDOW_HOURS)
    try:
        rows = conn.execute(database.query("saved_search_window"), {"since": since}).fetchall()
    except duckdb.Error as exc:
        return Window(frozenset(), frozenset(), None, f"saved searches not shown: {database.first_line(exc)}")
    return Window(frozenset(r[0] for r in rows if r[1]), frozenset(r[0] for r in rows if r[2]),
                  next((r[3] for r in rows if r[2]), None))


def recent(settings: WarehouseSettings, searches: Sequence[SavedSearch], win: Window) -> Matches:
    """Each saved search's matches in `win`, from the search index beside the warehouse."""
    if win.note or not searches:
        return Matches((), win, win.note)
    ids = sorted(win.day | win.last_run)
    try:
        missing = len(ids) - len(search.indexed(settings, ids)) if ids else 0
        found = ()
        if ids:
            with search.Searcher(settings) as searcher:  # one connection for every saved search
                found = tuple(_recent(searcher, saved, ids, win) for saved in searches)
    except search.SearchIndexMissing:
        return Matches((), win, "saved searches not shown: no search index yet (each ingest that loads articles "
                                "refreshes it; `newsflow search --rebuild` builds it now)")
    except SearchIndexDamaged as exc:  # names the file and the remedy already
        return Matches((), win, f"saved searches not shown: {database.first_line(exc)}")
    except (duckdb.Error, OSError) as exc:
        return Matches((), win, f"saved searches not shown: the search index cannot be read: "
                                f"{database.first_line(exc)} (`newsflow search --rebuild` rebuilds it)")
    note = (f"the search index is behind: {missing} of the {len(ids)} recent articles are not in it yet, so "
            "their matches are missing (the next ingest that loads articles refreshes it; "
            "`newsflow search --rebuild` now)") if missing else ""
    if not found:
        found = tuple(Recent(saved, 0, 0, ()) for saved in searches)
    return Matches(found, win, note)


def _recent(searcher: search.Searcher, saved: SavedSearch, ids: list[int], win: Window) -> Recent:
    filters = search.Filters(lang=saved.lang, feeds=saved.feeds, tags=saved.tags, limit=_LIMIT, ids=tuple(ids))
    hits = searcher.search(parse(saved.query), filters)
    return Recent(saved, sum(h.article_id in win.day for h in hits), sum(h.article_id in win.last_run for h in hits),
                  tuple(hits[:SHOWN]), len(hits) >= _LIMIT)


def count(n: int, capped: bool) -> str:
    return f"{n}+" if capped and n >= _LIMIT else str(n)


def lines(matches: Matches) -> list[str]:
    """`newsflow status`'s lines: a heading, per search its counts and TOP titles, and the note if any."""
    run = f" (run {matches.window.last_run_id[:8]})" if matches.window.last_run_id else ""
    out = [f"Saved searches (matches among the articles loaded in the last {WINDOW_HOURS} h, and by the last "
           f"run{run}):"]
    for r in matches.searches:
        out.append(f"  {r.search.name} ({r.search.query}): {count(r.day, r.capped)} in {WINDOW_HOURS} h, "
                   f"{count(r.last_run, r.capped)} in the last run")
        out.extend(f"    - {' '.join((h.title or h.url).split())}" for h in r.hits[:TOP])
    if matches.note:
        out.append(f"  {matches.note}")
    return out

"""`newsflow stories`: the stories in the warehouse (flows/text/stories.py), most covered first, each with its
timeline; and the members of one story, for `newsflow search --story` (docs/stories.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import Any

import duckdb

from flows.cli.common import CliError, counted, settings_for
from flows.core.settings import Settings
from flows.warehouse import database

_SHOWN_MEMBERS = 12  # timeline lines per story in the table format
COLUMNS = ("story_id", "title", "first_seen", "last_seen", "articles", "originals", "outlets", "languages",
           "top_entities", "first_outlet")


def add_parser(sub: Any, common: Any, day: Any, int_in: Any) -> None:
    """The `stories` subcommand (the argument types come from flows/cli/arguments.py)."""
    p = sub.add_parser("stories", help="the stories: different articles about one event, grouped, most covered first",
                       description="Lists stories (docs/stories.md) with the outlets that covered them, in order. "
                                   "Reads the warehouse read-only for a moment (its snapshot while a run loads it).")
    common(p)
    p.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="only stories seen on or after this day (UTC)")
    p.add_argument("--min-outlets", type=int_in(1), default=1, metavar="N",
                   help="only stories covered by at least N outlets (default 1)")
    p.add_argument("--limit", type=int_in(1, 10_000), default=20, metavar="N", help="stories, 1-10000 (default 20)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


@contextmanager
def _stories_reader(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a warehouse that has stories (one line when it predates them)."""
    with database.reader(settings.warehouse) as (_path, conn):
        if not conn.execute("select count(*) from information_schema.tables where table_name = 'stories'"
                            ).fetchone()[0]:
            raise CliError(f"{settings.warehouse.path} has no stories yet: run `newsflow load` (or an ingest) to "
                           "upgrade it, then `newsflow reprocess --step stories`")
        yield conn


def story_members(settings: Settings, story_id: int) -> tuple[int, ...]:
    """The stored articles (copies aside) of one story; a CliError when there is no such story."""
    with _stories_reader(settings) as conn:
        ids = [r[0] for r in conn.execute("select article_id from story_articles where story_id = ? and "
                                          "copy_of is null order by article_id", [story_id]).fetchall()]
    if not ids:
        raise CliError(f"no story {story_id} (see `newsflow stories` for their ids)")
    return tuple(ids)


def cmd_stories(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    since = datetime.combine(args.since, time(), UTC) if args.since else None
    with _stories_reader(settings) as conn:
        cur = conn.execute(database.query("stories_list"),
                           {"since": since, "min_outlets": args.min_outlets, "limit": args.limit})
        cols = [d[0] for d in cur.description]
        stories = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        ids = [s["story_id"] for s in stories]
        timeline: dict[int, list[dict[str, Any]]] = {}
        cur = conn.execute("select story_id, position, published, outlet, language, title, url, is_copy, similarity "
                           "from story_timeline where story_id in (select unnest($ids::bigint[])) "
                           "order by story_id, position", {"ids": ids})
        cols = [d[0] for d in cur.description]
        for row in cur.fetchall():
            member = dict(zip(cols, row, strict=True))
            timeline.setdefault(member.pop("story_id"), []).append(member)
    _print(stories, timeline, args.format)
    return 0


def _print(stories: list[dict[str, Any]], timeline: dict[int, list[dict[str, Any]]], fmt: str) -> None:
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(COLUMNS)
        w.writerows([[";".join(s[c]) if isinstance(s[c], list) else s[c] for c in COLUMNS] for s in stories])
        return
    if fmt == "json":
        import json

        for s in stories:
            print(json.dumps({**{c: s[c] for c in COLUMNS}, "timeline": timeline.get(s["story_id"], [])},
                             default=str, ensure_ascii=False))
        return
    if not stories:
        print("no stories")
    for n, s in enumerate(stories, 1):
        days = f"{s['first_seen']:%Y-%m-%d %H:%M} → {s['last_seen']:%Y-%m-%d %H:%M}"
        print(f"{n:>3}. {s['title'] or '(no title)'}\n     {counted(s['articles'], 'article')} "
              f"({counted(s['originals'], 'write-up')}, {counted(s['articles'] - s['originals'], 'copy', 'copies')}) · "
              f"{counted(s['outlets'], 'outlet')} · {', '.join(s['languages'] or []) or '-'} · {days} · "
              f"story {s['story_id']}")
        if s["top_entities"]:
            print(f"     entities: {', '.join(s['top_entities'])}")
        members = timeline.get(s["story_id"], [])
        for m in members[:_SHOWN_MEMBERS]:
            # The article that started the story was placed with similarity 0 (any join scores at least the threshold).
            kind = "copy" if m["is_copy"] else "first" if not m["similarity"] else f"{m['similarity']:.2f}"
            print(f"       {m['published']:%m-%d %H:%M}  {m['outlet'] or '-':<16} {kind:>5}  {m['title'] or m['url']}")
        if len(members) > _SHOWN_MEMBERS:
            print(f"       ... and {len(members) - _SHOWN_MEMBERS} more")

"""`newsflow search`: full-text search of the stored originals (BM25) over the index beside the warehouse, and
`search_articles()` for `newsflow sql` (docs/search.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import duckdb

from flows.cli.common import CliError, counted, settings_for
from flows.cli.story_command import story_members
from flows.core.settings import Settings, load_settings
from flows.warehouse import database


def add_parser(sub: Any, common: Any, text: Any, day: Any, int_in: Any) -> None:
    """The `search` subcommand (the argument types come from flows/cli/arguments.py)."""
    p = sub.add_parser("search", help="full-text search of the stored articles (BM25), copies shown once",
                       description='Words are AND-ed; "a phrase" in quotes, -word to exclude, a OR b for either. '
                                   "Reads only the index beside the warehouse (never blocks a run); "
                                   "see docs/search.md.")
    common(p)
    p.add_argument("query", nargs="?", help='the search, e.g. \'climate "carbon tax" -coal\'')
    p.add_argument("--lang", type=text, help="only articles in this language (en, fr, de, ...)")
    p.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="published (else fetched) on or after this day")
    p.add_argument("--until", type=day, metavar="YYYY-MM-DD", help="published (else fetched) on or before this day")
    p.add_argument("--feed", action="append", dest="feeds", metavar="NAME", type=text,
                   help="only this feed (repeatable)")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", type=text,
                   help="only feeds with this tag (repeatable)")
    p.add_argument("--story", type=int, metavar="ID", help="only articles of this story (`newsflow stories`)")
    p.add_argument("--limit", type=int_in(1, 1000), default=20, metavar="N", help="results, 1-1000 (default 20)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index from the warehouse first")
    p.add_argument("--print-sql", action="store_true",
                   help="print the SQL that gives a DuckDB CLI or program search_articles() (docs/search.md)")


def install_macro(conn: Any, settings: Settings, one_line: Any) -> None:
    """`search_articles('query', lang := 'en')` in `newsflow sql` when the search index is there."""
    from flows.warehouse import search

    if settings.warehouse.search_path.exists():
        try:
            search.install(conn, settings.warehouse)
        except (database.WarehouseError, duckdb.Error) as exc:  # the query may not need it: say why, go on
            print(f"(search_articles() is not available: {one_line(exc)})", file=sys.stderr)


def cmd_search(args: argparse.Namespace) -> int:
    """Exit 0 with results or none (an index of an empty warehouse); 2 for a bad query or no index yet."""
    from flows.core.searchquery import parse
    from flows.warehouse import search, search_index

    if args.print_sql:
        print(search.script(load_settings(args.config, warehouse=args.warehouse).warehouse), end="")
        return 0
    if args.query is None and not args.rebuild:
        raise CliError("give a search query, --rebuild or --print-sql")
    query = parse(args.query) if args.query is not None else None  # a bad query stops here, before any work
    if args.since and args.until and args.since > args.until:
        raise CliError(f"--since {args.since} is after --until {args.until}")
    settings = settings_for(args)
    if args.rebuild:
        done = search_index.refresh(settings, rebuild=True, wait=settings.warehouse.waits.load)
        if done.mode == "skipped":
            raise CliError(f"the search index was not rebuilt: {done.reason}")
        print(f"search index rebuilt: {done.articles} articles in {done.seconds:.1f} s "
              f"({settings.warehouse.search_path})", file=sys.stderr if query else sys.stdout)
    if query is None:
        return 0
    ids = story_members(settings, args.story) if args.story is not None else None
    filters = search.Filters(lang=args.lang.lower() if args.lang else None, since=args.since, until=args.until,
                             feeds=tuple(args.feeds or ()), tags=tuple(args.tags or ()), limit=args.limit, ids=ids)
    hits = search.search(settings.warehouse, query, filters)
    _print_hits(hits, args.format)
    return 0


def _print_hits(hits: list[Any], fmt: str) -> None:
    cols = ("article_id", "score", "date", "language", "feed", "copies", "title", "url", "snippet")
    if fmt == "table":
        if not hits:
            print("no matches")
        for n, h in enumerate(hits, 1):
            day = h.date.date().isoformat() if h.date else "-"
            print(f"{n:>3}. {h.title or '(no title)'}\n     {h.feed or 'seed'} · {day} · {h.language or '-'} · "
                  f"{counted(h.copies, 'copy', 'copies')} · score {h.score:.2f} · {h.url}\n     {h.snippet}")
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows([getattr(h, c) for c in cols] for h in hits)
    else:
        import json

        for h in hits:
            print(json.dumps({c: getattr(h, c) for c in cols}, default=str, ensure_ascii=False))

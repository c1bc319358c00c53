"""The commands that read the warehouse: sql, export, status, check, report (a user's SQL through the query
guard, every output path through the write guard)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from flows.cli import search_command, story_command
from flows.cli.common import CliError, query_text, settings_for
from flows.core import owned
from flows.run import progress
from flows.warehouse import database, queryguard, snapshot


def cmd_sql(args: argparse.Namespace) -> int:
    settings = settings_for(args, snapshot=args.snapshot)
    text = query_text(args.query)
    queryguard.check(text)  # every statement, all the way down, only reads: else refused before the file opens
    with database.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        # Reads the warehouse and its raw archives (docs/schema.md reads them with read_parquet), writes nothing.
        search_command.install_macro(conn, settings, lambda exc: database.first_line(exc))
        database.restrict_files(conn, [settings.warehouse.raw_dir])
        if path != settings.warehouse.path and not args.snapshot:
            at = snapshot.published_at(settings.warehouse)
            when = "" if at is None else f", published {snapshot.ago(time.time() - at)}"
            print(f"(the live warehouse is busy loading; querying the last snapshot {path}{when})", file=sys.stderr)
        try:
            return _show(conn, text, args)
        except duckdb.Error as exc:
            raise database.QueryError(database.first_line(exc)) from None


def _show(conn: Any, text: str, args: argparse.Namespace) -> int:
    """Print the result of `text` as a table, CSV or JSON lines."""
    rel = conn.sql(text)
    if rel is None:
        return 0
    if args.format == "table":
        rel.show(max_rows=args.max_rows, max_width=200)
    elif args.format == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(rel.columns)
        w.writerows(rel.fetchall())
    else:
        from flows.core.jsonvalues import row_json

        cols, types = rel.columns, rel.types
        for row in rel.fetchall():
            print(row_json(cols, types, row))  # JSON lines: every line valid JSON (no NaN, JSON columns as JSON)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_for(args, snapshot=args.snapshot)
    from flows.warehouse.export import bound_memory, export

    query = query_text(args.query) if args.query else None
    if query and args.tables:
        raise CliError("give tables or --query, not both")
    if query:
        queryguard.check(query)
    with database.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        bound_memory(conn, args.tables or None, query)  # before restrict_files locks the configuration
        database.restrict_files(conn, [settings.warehouse.raw_dir])
        try:
            with progress.using(progress.for_stream()) as shown:
                done = export(conn, Path(args.out), tables=args.tables or None, query=query, name=args.name,
                              fmt=args.format, owned=owned.of_settings(settings),
                              progress=lambda n, total: shown.update("files", "files exported", n, total, main=True))
        except duckdb.Error as exc:
            raise database.QueryError(database.first_line(exc)) from None
    print(f"exported from {path}:")
    for item in done:
        print(f"  {item.path}  ({item.rows} rows)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    from flows.ops import status

    status.show(settings)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the warehouse checks once: 0 when all hold, 1 when any returns rows (WarehouseError gives 2)."""
    settings = settings_for(args, write=True)
    import json

    from flows.warehouse import checks

    # Read-write but brief (well under a second at 2,000 articles), so a load meeting it only waits a moment.
    done = checks.run_and_store(settings.warehouse, checks.new_check_id(),
                                wait=settings.warehouse.waits.check_command, dedup=settings.dedup,
                                full=not args.incremental)
    print(f"{settings.warehouse.path}: {len(done.results)} checks, {len(done.failed)} failing, "
          f"{'incremental' if args.incremental else 'full'} (stored as run {done.run_id})")
    if done.note:
        print(f"  note: {done.note}")
    for r in done.results:
        if r.skipped:
            print(f"  skip  {r.name}: {r.skipped}")
            continue
        mark = "FAIL" if r.failed else "ok  "
        span = ""
        if r.scope == "incremental" and r.since_seq is not None and r.until_seq is not None:
            span = f"  loads {r.since_seq + 1}..{r.until_seq}" if r.until_seq > r.since_seq else "  no new loads"
        print(f"  {mark}  {r.name:<28} {r.offending_rows if r.error is None else 'error':>6}  "
              f"{r.duration_ms:7.1f} ms{span}")
        if r.error:
            print(f"          {r.error}")
        for row in r.sample:
            print(f"          {json.dumps(row, default=str)}")
    return 1 if done.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    from flows.warehouse.reportpage import write

    out = Path(args.out)
    try:
        source = write(settings.warehouse, out, owned=owned.of_settings(settings), searches=settings.searches)
    except OSError as exc:  # an unwritable --out: one line, like every other usage error
        print(f"newsflow: {out}: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} from {source}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sql": cmd_sql, "export": cmd_export, "status": cmd_status, "check": cmd_check, "report": cmd_report,
    "search": search_command.cmd_search, "stories": story_command.cmd_stories}

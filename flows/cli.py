"""`newsflow`: the command line. Every command loads the settings first, so a bad config stops it in one line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

# An offline machine has no one to send analytics to; keep Prefect quiet unless the user says otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Without PREFECT_API_URL, runs use a temporary local Prefect server; on a busy 2-core machine its first start
# (creating its SQLite database) can take longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
if not os.environ.get("PREFECT_API_URL"):
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")

from flows import warehouse
from flows.settings import ConfigError, Settings, load_settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default: NEWSFLOW_CONFIG or config/newsflow.toml)")
    p.add_argument("--warehouse", help="DuckDB file (default: NEWSFLOW_WAREHOUSE or the config's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsflow", description="Scheduled news ingestion into DuckDB.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="run the ingest flow once")
    _common(p)
    p.add_argument("--feed", action="append", dest="feeds", metavar="NAME", help="only this feed (repeatable)")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="only feeds with this tag")
    p.add_argument("--max-articles", type=int, metavar="N", help="new articles per feed (default: config)")
    p.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD", help="skip older entries")
    p.add_argument("--dry-run", action="store_true", help="fetch, extract and tag, but write nothing")

    p = sub.add_parser("seeds", help="load new or changed seed files")
    _common(p)

    p = sub.add_parser("sql", help="run a read-only SQL query and print the result",
                       description="Runs one query and closes the file at once, so it never holds up a run "
                                   "for long. For a long session use the snapshot: "
                                   "duckdb -readonly <snapshot_path> (see docs/schema.md).")
    _common(p)
    p.add_argument("query", help="SQL text, or @file.sql")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--snapshot", action="store_true",
                   help="query the published snapshot instead of the live file (never blocks a run)")
    p.add_argument("--max-rows", type=int, default=40, help="rows shown in table format")

    p = sub.add_parser("export", help="write tables, views or a query to Parquet or CSV files")
    _common(p)
    p.add_argument("tables", nargs="*", metavar="TABLE",
                   help="tables or views to export (default: every table and view except the dedup index)")
    p.add_argument("--query", help="export this SQL query (or @file.sql) instead of tables")
    p.add_argument("--name", default="query", help="file name (without extension) for --query")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--out", default="export", help="output folder, or a file path for --query (default: export)")
    p.add_argument("--snapshot", action="store_true", help="read the published snapshot (never blocks a run)")

    p = sub.add_parser("status", help="last runs, failing feeds, staged batches")
    _common(p)

    p = sub.add_parser("serve", help="register the Prefect deployments (ingest on the config's cron schedule) "
                                     "and run their flow runs until stopped (Ctrl-C or SIGTERM)")
    _common(p)

    p = sub.add_parser("reprocess", help="re-run dedup and/or entity tagging over the stored articles")
    _common(p)
    p.add_argument("--step", action="append", dest="steps", choices=("dedup", "entities"),
                   help="dedup and/or entities (repeatable; default both)")
    p.add_argument("--all", action="store_true", help="re-tag every article, not only those tagged by another model")
    p.add_argument("--batch-size", type=int, default=500, help="articles per transaction")

    p = sub.add_parser("report", help="write the warehouse as one self-contained HTML page (charts inline)",
                       description="Reads the warehouse read-only for a moment (the snapshot while a run is "
                                   "loading it) and writes one HTML file that loads nothing from the network.")
    _common(p)
    p.add_argument("--out", required=True, metavar="PATH", help="the HTML file to write (replaced atomically)")

    p = sub.add_parser("demo", help="serve the bundled offline snapshot on 127.0.0.1 and ingest it")
    p.add_argument("--warehouse", help="DuckDB file (default: warehouse/demo.duckdb)")
    p.add_argument("--port", type=int, default=8765,
                   help="port for the local server; article URLs include it, so keep it to re-run (default 8765)")
    p.add_argument("--fresh", action="store_true", help="delete the demo warehouse first")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), warehouse=getattr(args, "warehouse", None))


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.flow import ingest

    summary = ingest(feeds=args.feeds, tags=args.tags, max_articles_per_feed=args.max_articles,
                     since=args.since, dry_run=args.dry_run, config=str(settings.config_path),
                     warehouse_path=str(settings.warehouse.path))
    _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    keys = ("feeds_ok", "feeds_not_modified", "feeds_failed", "feeds_skipped", "entries_new", "articles_new",
            "fallbacks", "duplicates_exact", "duplicates_near", "entity_mentions", "batches_staged")
    print(f"run {summary.get('run_id', '-')}: {summary.get('status')}")
    print("  " + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    if summary.get("batches_staged"):
        print("  the warehouse was locked: batches are staged and the next run loads them")


def cmd_seeds(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.flow import reload_seeds

    result = reload_seeds(config=str(settings.config_path), warehouse_path=str(settings.warehouse.path))
    print(f"{result['seeds_loaded']} seed files loaded, {len(result['errors'])} skipped")
    for err in result["errors"]:
        print(f"  skipped: {err}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    settings = _settings(args)
    text = Path(args.query[1:]).read_text() if args.query.startswith("@") else args.query
    with warehouse.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        if path != settings.warehouse.path and not args.snapshot:
            print(f"(the live warehouse is busy loading; querying the last snapshot {path})", file=sys.stderr)
        return _show(conn, text, args)


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
        import json

        cols = rel.columns
        for row in rel.fetchall():
            print(json.dumps(dict(zip(cols, row, strict=True)), default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.export import export

    query = args.query
    if query and query.startswith("@"):
        query = Path(query[1:]).read_text()
    if query and args.tables:
        raise ValueError("give tables or --query, not both")
    with warehouse.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        done = export(conn, Path(args.out), tables=args.tables or None, query=query, name=args.name,
                      fmt=args.format)
    print(f"exported from {path}:")
    for item in done:
        print(f"  {item.path}  ({item.rows} rows)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows import staging

    with warehouse.connect(settings.warehouse, read_only=True, wait=3.0) as conn:
        print("Last runs:")
        conn.sql(warehouse.query("status_runs")).show(max_width=200)
        print("Feeds failing or disabled:")
        conn.sql(warehouse.query("run_report")).show(max_width=200)
    staged = staging.pending(settings.warehouse.staging_dir)
    print(f"Staged batches waiting to load: {len(staged)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import DEMO_DATA, DEMO_WAREHOUSE, demo_config
    from flows.localserver import LocalServer

    db = Path(args.warehouse).resolve() if args.warehouse else DEMO_WAREHOUSE
    if args.fresh:
        for p in (db, db.with_name(db.name + ".wal")):
            p.unlink(missing_ok=True)
    with LocalServer(DEMO_DATA, port=args.port) as server, tempfile.TemporaryDirectory() as tmp:
        print(f"serving the offline snapshot at {server.base}")
        config = demo_config(server, db, Path(tmp))
        load_settings(config)
        from flows.flow import ingest

        summary = ingest(config=str(config), warehouse_path=str(db))
    _print_summary(summary)
    print(f"\nwarehouse: {db}\ntry:\n  newsflow sql --warehouse {db} "
          "\"select url, duplicate_of, method, round(similarity, 3) as sim from duplicates\"\n"
          f"  newsflow sql --warehouse {db} \"select * from entity_mentions_top limit 20\"")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.deploy import serve

    serve(settings)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.htmlreport import write

    out = Path(args.out)
    try:
        source = write(settings.warehouse, out)
    except OSError as exc:  # an unwritable --out: one line, like every other usage error
        print(f"newsflow: {out}: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} from {source}")
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.maintenance import Step, reprocess

    result = reprocess(steps=[Step(s) for s in args.steps or ("dedup", "entities")], only_stale=not args.all,
                       batch_size=args.batch_size, config=str(settings.config_path),
                       warehouse_path=str(settings.warehouse.path))
    for step in ("dedup", "entities"):
        if step in result:
            print(f"{step}: " + ", ".join(f"{k}={v}" for k, v in result[step].items()))
    return 0


COMMANDS = {"serve": cmd_serve, "reprocess": cmd_reprocess,
            "ingest": cmd_ingest, "seeds": cmd_seeds, "sql": cmd_sql, "export": cmd_export,
            "status": cmd_status, "demo": cmd_demo, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, warehouse.WarehouseError, ValueError) as exc:
        print(f"newsflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

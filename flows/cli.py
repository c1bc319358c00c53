"""`newsflow`: the command line. Every command loads the settings first, so a bad config stops it in one line.

The contract every command keeps: arguments are checked before anything runs; a user error (bad argument,
config, file or query) is one line on stderr, `newsflow: ...`, and exit 2; an unexpected exception is one line
naming its type, and exit 1; `--debug` or NEWSFLOW_DEBUG=1 adds the traceback. No command deletes, migrates
or creates a file that is not a newsflow warehouse.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

# An offline machine has no one to send analytics to; keep Prefect quiet unless the user says otherwise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Tracebacks of a unit of work that failed unexpectedly (logged by the stage modules) reach the Prefect run log.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "newsflow")
# Without PREFECT_API_URL, runs use a temporary local Prefect server; on a busy 2-core machine its first start
# (creating its SQLite database) can take longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
if not os.environ.get("PREFECT_API_URL"):
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")

import duckdb

from flows.core.settings import ConfigError, Settings, load_settings
from flows.run import progress
from flows.warehouse import database
from flows.warehouse.export import check_name


class CliError(Exception):
    """A user error found by a command: printed as one line, exit 2."""


# Errors that come from what the user gave (arguments, config, files, SQL): one line and exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (CliError, ConfigError, database.WarehouseError, ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of every other user error (its default prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"newsflow: {message} (see `{self.prog} --help`)\n")


def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type for a whole number from `lo` to `hi` (no upper bound when None)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < lo or (hi is not None and n > hi):
            limit = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {limit}, got {n}")
        return n

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _shard(text: str) -> str:
    from flows.run.collect import parse_shard

    try:
        k, n = parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{k}/{n}"


def _file_name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=_text, help="config file (default: NEWSFLOW_CONFIG or config/newsflow.toml)")
    p.add_argument("--warehouse", type=_text, help="DuckDB file (default: NEWSFLOW_WAREHOUSE or the config's)")
    _debug(p)


def _debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not undo `newsflow --debug CMD`.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print the traceback of an error (also NEWSFLOW_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="newsflow", description="Scheduled news ingestion into DuckDB.",
                     epilog="Exit status: 0 done, 2 user error (one line on stderr), 1 unexpected error, "
                            "130 interrupted. --debug or NEWSFLOW_DEBUG=1 prints tracebacks.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (also NEWSFLOW_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="run the ingest flow once")
    _common(p)
    p.add_argument("--feed", action="append", dest="feeds", metavar="NAME", type=_text,
                   help="only this feed (repeatable; must be in the config)")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", type=_text,
                   help="only feeds with this tag (repeatable; must be a tag of a configured feed)")
    p.add_argument("--max-articles", type=_int_in(0, 1000), metavar="N",
                   help="new articles per feed, 0-1000 (default: config)")
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="skip older entries")
    p.add_argument("--dry-run", action="store_true", help="fetch, extract and tag, but write nothing")
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="only shard K of N, 1-based (feeds split by a stable hash of their host)")
    p.add_argument("--stage-only", action="store_true",
                   help="stage the batches for `newsflow load`; never open the warehouse for writing")

    p = sub.add_parser("load", help="load every staged batch, oldest first, then run the warehouse checks",
                       description="The one committer of a sharded ingest: loads the batches that stage-only "
                                   "runs left in [warehouse] staging_dir (dedup decided inside each "
                                   "transaction), new seed files, then runs the warehouse checks.")
    _common(p)

    p = sub.add_parser("fanout", help="run N stage-only shard runs on a Prefect work pool, then the loader",
                       description="Needs a Prefect API (PREFECT_API_URL), the deployments of prefect.yaml "
                                   "and a worker on their work pool (docs/scale.md). Config and warehouse "
                                   "paths are passed to the shard runs as given: the workers must see them.")
    _common(p)
    p.add_argument("--shards", type=_int_in(1, 256), required=True, metavar="N", help="shard runs, 1-256")
    p.add_argument("--max-articles", type=_int_in(0, 1000), metavar="N",
                   help="new articles per feed, 0-1000 (default: config)")
    p.add_argument("--timeout", type=_int_in(1), default=3600, metavar="S",
                   help="seconds the shard runs may take before the loader runs anyway (default 3600)")

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
    p.add_argument("--max-rows", type=_int_in(1), default=40, metavar="N",
                   help="rows shown in table format, at least 1 (default 40)")

    p = sub.add_parser("export", help="write tables, views or a query to Parquet or CSV files")
    _common(p)
    p.add_argument("tables", nargs="*", metavar="TABLE",
                   help="tables or views to export (default: every table and view except the dedup index)")
    p.add_argument("--query", help="export this SQL query (or @file.sql) instead of tables")
    p.add_argument("--name", default="query", type=_file_name,
                   help="file name (without extension, no folders) for --query")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--out", default="export", type=_text,
                   help="output folder, or a file path for --query (default: export)")
    p.add_argument("--snapshot", action="store_true", help="read the published snapshot (never blocks a run)")

    p = sub.add_parser("status", help="last runs, failing feeds, staged batches")
    _common(p)

    p = sub.add_parser("check", help="run the warehouse checks (invariants as queries); exit 1 when any fails",
                       description="Runs every warehouse/checks/*.sql and stores the outcome in check_results. "
                                   "Exit codes: 0 all checks hold, 1 some returned rows, 2 cannot run.")
    _common(p)

    p = sub.add_parser("serve", help="register the Prefect deployments (ingest on the config's cron schedule) "
                                     "and run their flow runs until stopped (Ctrl-C or SIGTERM)")
    _common(p)

    p = sub.add_parser("reprocess", help="re-run dedup and/or entity tagging over the stored articles")
    _common(p)
    p.add_argument("--step", action="append", dest="steps", choices=("dedup", "entities"),
                   help="dedup and/or entities (repeatable; default both)")
    p.add_argument("--all", action="store_true", help="re-tag every article, not only those tagged by another model")
    p.add_argument("--batch-size", type=_int_in(1, 10_000), default=500, metavar="N",
                   help="articles per transaction, 1-10000 (default 500)")

    p = sub.add_parser("report", help="write the warehouse as one self-contained HTML page (charts inline)",
                       description="Reads the warehouse read-only for a moment (the snapshot while a run is "
                                   "loading it) and writes one HTML file that loads nothing from the network.")
    _common(p)
    p.add_argument("--out", required=True, metavar="PATH", help="the HTML file to write (replaced atomically)")

    p = sub.add_parser("demo", help="serve the bundled offline snapshot on 127.0.0.1 and ingest it")
    p.add_argument("--warehouse", type=_text, help="DuckDB file (default: warehouse/demo.duckdb); a new file or "
                                                   "one the demo made")
    p.add_argument("--port", type=_int_in(0, 65535), default=8765,
                   help="port for the local server, 0-65535 (0: any free one); article URLs include it, so keep it "
                        "to re-run (default 8765)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the demo warehouse first (only one the demo made: it has a <file>.demo marker)")
    _debug(p)
    return parser


def _settings(args: argparse.Namespace, *, create: bool = False, snapshot: bool = False) -> Settings:
    """The settings, after checking the warehouse file the command will use: it must be a newsflow warehouse
    (`create`: or missing, for the commands that make one); `snapshot`: the published snapshot is read."""
    settings = load_settings(getattr(args, "config", None), warehouse=getattr(args, "warehouse", None))
    if settings.warehouse.is_lake:  # a lake has no snapshot file: it is always read live
        database.check_lake(settings.warehouse, create=create)
        return settings
    path = settings.warehouse.snapshot_path if snapshot else settings.warehouse.path
    if not (snapshot and not path.exists()):  # a missing snapshot: database.reader says how one is made
        database.check_file(path, create=create)
    return settings


def _query_text(arg: str) -> str:
    """The SQL of `arg`, or of the file it names as @file.sql."""
    if not arg.startswith("@"):
        return arg
    path = Path(arg[1:])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CliError(f"{path}: cannot read the query file ({reason})") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args, create=True)
    from flows.run.ingest import ingest, select_feeds

    select_feeds(settings, args.feeds, args.tags)  # unknown names or tags stop here, before a run starts

    with progress.using(progress.for_stream()):
        summary = ingest(feeds=args.feeds, tags=args.tags, max_articles_per_feed=args.max_articles,
                         since=args.since, dry_run=args.dry_run, config=str(settings.config_path),
                         warehouse_path=str(settings.warehouse.path), shard=args.shard,
                         stage_only=args.stage_only)
    _print_summary(summary)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    settings = _settings(args, create=True)
    from flows.run.loader import load

    summary = load(config=str(settings.config_path), warehouse_path=str(settings.warehouse.path))
    _print_summary(summary)
    print(f"  {summary.get('batches_loaded', 0)} staged batches loaded")
    return 0


def cmd_fanout(args: argparse.Namespace) -> int:
    settings = _settings(args, create=True)
    from flows.ops.fanout import fanout, preflight

    problem = preflight()
    if problem:
        raise CliError(problem)
    summary = fanout(shards=args.shards, max_articles_per_feed=args.max_articles,
                     config=str(settings.config_path), warehouse_path=str(settings.warehouse.path),
                     timeout_seconds=float(args.timeout))
    print(f"fanout of {args.shards} shards: {summary['status']}; loader {summary['loader']}")
    for shard, state in summary["shards"].items():
        print(f"  shard {shard}: {state}")
    if summary["incomplete"]:
        print("  what the incomplete shards staged is loaded; the next fanout fetches their feeds again")
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    keys = ("feeds_ok", "feeds_not_modified", "feeds_failed", "feeds_skipped", "entries_new", "articles_new",
            "fallbacks", "duplicates_exact", "duplicates_near", "entity_mentions", "batches_staged")
    print(f"run {summary.get('run_id', '-')}: {summary.get('status')}")
    print("  " + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    if summary.get("batches_staged"):
        print("  the warehouse was locked: batches are staged and the next run loads them")
    if summary.get("checks_failed"):
        print(f"  {summary['checks_failed']} warehouse checks failed: see `newsflow status` or `newsflow check`")


def cmd_seeds(args: argparse.Namespace) -> int:
    settings = _settings(args, create=True)
    from flows.run.loader import reload_seeds

    with progress.using(progress.for_stream()):
        result = reload_seeds(config=str(settings.config_path), warehouse_path=str(settings.warehouse.path))
    print(f"{result['seeds_loaded']} seed files loaded, {len(result['errors'])} skipped")
    for err in result["errors"]:
        print(f"  skipped: {err}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    settings = _settings(args, snapshot=args.snapshot)
    text = _query_text(args.query)
    with database.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        # Reads the warehouse and its raw archives (docs/schema.md reads them with read_parquet), writes nothing.
        database.restrict_files(conn, [settings.warehouse.raw_dir])
        database.check_read_only(conn, text)
        if path != settings.warehouse.path and not args.snapshot:
            print(f"(the live warehouse is busy loading; querying the last snapshot {path})", file=sys.stderr)
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
        import json

        cols = rel.columns
        for row in rel.fetchall():
            print(json.dumps(dict(zip(cols, row, strict=True)), default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args, snapshot=args.snapshot)
    from flows.warehouse.export import export

    query = _query_text(args.query) if args.query else None
    if query and args.tables:
        raise CliError("give tables or --query, not both")
    with database.reader(settings.warehouse, snapshot=args.snapshot) as (path, conn):
        database.restrict_files(conn, [settings.warehouse.raw_dir])
        if query:
            database.check_read_only(conn, query)
        try:
            with progress.using(progress.for_stream()) as shown:
                done = export(conn, Path(args.out), tables=args.tables or None, query=query, name=args.name,
                              fmt=args.format, progress=lambda n, total: shown.update(
                                  "files", "files exported", n, total, main=True))
        except duckdb.Error as exc:
            raise database.QueryError(database.first_line(exc)) from None
    print(f"exported from {path}:")
    for item in done:
        print(f"  {item.path}  ({item.rows} rows)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.warehouse import staging

    with database.connect(settings.warehouse, read_only=True, wait=settings.warehouse.waits.read) as conn:
        print("Last runs:")
        conn.sql(database.query("status_runs")).show(max_width=200)
        print("Feeds failing or disabled:")
        conn.sql(database.query("run_report")).show(max_width=200)
        print("Warehouse checks (latest outcome of each; `newsflow check` runs them now):")
        conn.sql(database.query("status_checks")).show(max_width=200)
    staged = staging.pending(settings.warehouse.staging_dir)
    print(f"Staged batches waiting to load: {len(staged)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the warehouse checks once: 0 when all hold, 1 when any returns rows (WarehouseError gives 2)."""
    settings = _settings(args)
    import json

    from flows.warehouse import checks

    # Read-write but brief (well under a second at 2,000 articles), so a load meeting it only waits a moment.
    done = checks.run_and_store(settings.warehouse, checks.new_check_id(),
                                wait=settings.warehouse.waits.check_command, dedup=settings.dedup)
    print(f"{settings.warehouse.path}: {len(done.results)} checks, {len(done.failed)} failing "
          f"(stored as run {done.run_id})")
    if done.note:
        print(f"  note: {done.note}")
    for r in done.results:
        if r.skipped:
            print(f"  skip  {r.name}: {r.skipped}")
            continue
        mark = "FAIL" if r.failed else "ok  "
        print(f"  {mark}  {r.name:<28} {r.offending_rows if r.error is None else 'error':>6}  {r.duration_ms:7.1f} ms")
        if r.error:
            print(f"          {r.error}")
        for row in r.sample:
            print(f"          {json.dumps(row, default=str)}")
    return 1 if done.failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.ops import demo
    from flows.ops.localserver import LocalServer

    db = Path(args.warehouse).resolve() if args.warehouse else demo.DEMO_WAREHOUSE
    demo.check_target(db, fresh=args.fresh)
    try:
        server = LocalServer(demo.DEMO_DATA, port=args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(f"port {args.port} on 127.0.0.1 is in use; choose another with --port") from None
        raise
    with server, tempfile.TemporaryDirectory() as tmp:
        print(f"serving the offline snapshot at {server.base}")
        config = demo.demo_config(server, db, Path(tmp))
        load_settings(config)  # a bad NEWSFLOW_* override stops the demo before it deletes or writes anything
        if args.fresh:
            demo.remove(db)
        demo.mark(db)
        from flows.run.ingest import ingest

        with progress.using(progress.for_stream()):
            summary = ingest(config=str(config), warehouse_path=str(db))
    _print_summary(summary)
    print(f"\nwarehouse: {db}\ntry:\n  newsflow sql --warehouse {db} "
          "\"select url, duplicate_of, method, round(similarity, 3) as sim from duplicates\"\n"
          f"  newsflow sql --warehouse {db} \"select * from entity_mentions_top limit 20\"")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, create=True)
    from flows.ops.deploy import serve

    serve(settings)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from flows.warehouse.reportpage import write

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
    from flows.ops.maintenance import Step, reprocess
    from flows.warehouse.runlock import run_lock

    with run_lock(settings.warehouse.path) as free:  # the flow takes it again; this only says so in one line
        if not free:
            raise CliError(f"an ingest or maintenance run holds {settings.warehouse.path}; try again when it ends")

    with progress.using(progress.for_stream()):
        result = reprocess(steps=[Step(s) for s in args.steps or ("dedup", "entities")], only_stale=not args.all,
                           batch_size=args.batch_size, config=str(settings.config_path),
                           warehouse_path=str(settings.warehouse.path))
    for step in ("dedup", "entities"):
        if step in result:
            print(f"{step}: " + ", ".join(f"{k}={v}" for k, v in result[step].items()))
    return 0


COMMANDS = {"serve": cmd_serve, "check": cmd_check, "reprocess": cmd_reprocess, "load": cmd_load, "fanout": cmd_fanout,
            "ingest": cmd_ingest, "seeds": cmd_seeds, "sql": cmd_sql, "export": cmd_export,
            "status": cmd_status, "demo": cmd_demo, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error, whichever command raised it, ends as one line and an exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad argument already reported in one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False) or os.environ.get("NEWSFLOW_DEBUG", "") not in ("", "0")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        return _fail(exc, debug, 2, f"newsflow: {_one_line(exc)}")
    except Exception as exc:  # a bug or a broken environment: still one line, but say what it was
        return _fail(exc, debug, 1, f"newsflow: unexpected {type(exc).__name__}: {_one_line(exc)} "
                                    "(run with --debug or NEWSFLOW_DEBUG=1 for the traceback)")


def _one_line(exc: BaseException) -> str:
    return " ".join(database.first_line(exc).split())


def _fail(exc: BaseException, debug: bool, code: int, line: str) -> int:
    if debug:
        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The `newsflow` argument parser: every argument is checked (types, ranges, empty values) before a command runs,
and a bad one is one line and exit 2 like every other user error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from typing import Any, NoReturn

from flows.cli import backup_commands, search_command, story_command
from flows.core.settings import MAX_SHARDS
from flows.warehouse.export import check_name


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


def _path(text: str) -> str:
    if not text.strip():  # Path("") is ".": the error would name the working directory, not the argument
        raise argparse.ArgumentTypeError("empty path")
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
                            "130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 stdout closed by its reader. "
                            "--debug or NEWSFLOW_DEBUG=1 prints tracebacks.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (also NEWSFLOW_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run_commands(sub)
    _add_read_commands(sub)
    _add_ops_commands(sub)
    backup_commands.add_parsers(sub, _common, _path)
    return parser


def _add_run_commands(sub: Any) -> None:
    """ingest, load, fanout, seeds: the commands that fill the warehouse."""
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
                   help=f"only shard K of N, 1-based, N at most {MAX_SHARDS} (feeds split by a stable hash of "
                        "their host)")
    p.add_argument("--stage-only", action="store_true",
                   help="stage the batches for `newsflow load`; never open the warehouse for writing")

    p = sub.add_parser("load", help="load new seed files, then every staged batch oldest first, then run the "
                                    "warehouse checks",
                       description="The one committer of a sharded ingest: loads new seed files first (so a seed "
                                   "stays the original of its copies), then the batches that stage-only runs "
                                   "left in [warehouse] staging_dir (dedup decided inside each transaction), "
                                   "then runs the warehouse checks.")
    _common(p)

    p = sub.add_parser("fanout", help="run N stage-only shard runs on a Prefect work pool, then the loader",
                       description="Needs a Prefect API (PREFECT_API_URL), the deployments of prefect.yaml "
                                   "and a worker on their work pool (docs/scale.md). Config and warehouse "
                                   "paths are passed to the shard runs as given: the workers must see them.")
    _common(p)
    p.add_argument("--shards", type=_int_in(1, MAX_SHARDS), required=True, metavar="N",
                   help=f"shard runs, 1-{MAX_SHARDS}")
    p.add_argument("--max-articles", type=_int_in(0, 1000), metavar="N",
                   help="new articles per feed, 0-1000 (default: config)")
    p.add_argument("--timeout", type=_int_in(1), default=3600, metavar="S",
                   help="seconds the shard runs may take before the loader runs anyway (default 3600)")

    p = sub.add_parser("seeds", help="load new or changed seed files")
    _common(p)


def _add_read_commands(sub: Any) -> None:
    """sql, export, status, check, search, stories: the commands that read it."""
    search_command.add_parser(sub, _common, _text, _day, _int_in)
    story_command.add_parser(sub, _common, _day, _int_in)
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
                   help="output folder, or a file path for --query (default: export); an existing file is "
                        "replaced only when it is an earlier export of the same columns")
    p.add_argument("--snapshot", action="store_true", help="read the published snapshot (never blocks a run)")

    p = sub.add_parser("status", help="last runs, failing feeds, staged batches")
    _common(p)

    p = sub.add_parser("check", help="run the warehouse checks (invariants as queries); exit 1 when any fails",
                       description="Runs every warehouse/checks/*.sql and stores the outcome in check_results. "
                                   "Exit codes: 0 all checks hold, 1 some returned rows, 2 cannot run.")
    _common(p)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--full", dest="incremental", action="store_false",
                       help="check every row (the default)")
    scope.add_argument("--incremental", action="store_true",
                       help="check only the rows loaded since each check last held, as every ingest does")
    p.set_defaults(incremental=False)


def _add_ops_commands(sub: Any) -> None:
    """serve, reprocess, maintain, report, demo."""
    p = sub.add_parser("serve", help="register the Prefect deployments (ingest on the config's cron schedule) "
                                     "and run their flow runs until stopped (Ctrl-C or SIGTERM)")
    _common(p)

    p = sub.add_parser("reprocess", help="re-run dedup, entity tagging and/or story clustering over the stored "
                                         "articles")
    _common(p)
    p.add_argument("--step", action="append", dest="steps", choices=("dedup", "entities", "stories"),
                   help="dedup, entities and/or stories (repeatable, run in that order; default dedup and entities)")
    p.add_argument("--all", action="store_true", help="re-tag every article, not only those tagged by another model")
    p.add_argument("--batch-size", type=_int_in(1, 10_000), default=500, metavar="N",
                   help="articles per transaction, 1-10000 (default 500)")

    p = sub.add_parser("maintain", help="roll up old bookkeeping rows, drop raw HTML past its retention, run the "
                                        "full checks, upkeep a DuckLake, compact the file, rebuild lookup caches",
                       description="The maintenance flow (docs/operations.md, Maintenance), also served nightly by "
                                   "`newsflow serve`. It holds the run lock: an ingest starting meanwhile skips its "
                                   "turn.")
    _common(p)
    p.add_argument("--step", action="append", dest="steps",
                   choices=("rollup", "raw", "checks", "lake", "compact", "cache", "snapshot"),
                   help="only this step (repeatable; default all, in this order)")
    p.add_argument("--dry-run", action="store_true", help="say what each step would do; write nothing")

    p = sub.add_parser("report", help="write the warehouse as one self-contained HTML page (charts inline)",
                       description="Reads the warehouse read-only for a moment (the snapshot while a run is "
                                   "loading it) and writes one HTML file that loads nothing from the network.")
    _common(p)
    p.add_argument("--out", required=True, metavar="PATH", type=_path,
                   help="the HTML file to write: a new file or an earlier report page (replaced atomically)")

    p = sub.add_parser("demo", help="serve the bundled offline snapshot on 127.0.0.1 and ingest it")
    p.add_argument("--warehouse", type=_text, help="DuckDB file (default: warehouse/demo.duckdb); a new file or "
                                                   "one the demo made")
    p.add_argument("--port", type=_int_in(0, 65535), default=8765,
                   help="port for the local server, 0-65535 (0: any free one); article URLs include it, so keep it "
                        "to re-run (default 8765)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the demo warehouse first (only one the demo made: it has a <file>.demo marker)")
    _debug(p)

"""What every command shares: the settings with the warehouse checked, query text from @files, the run summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flows.core.files import FileTooLargeError, NotRegularFileError, read_bounded
from flows.core.settings import Settings, load_settings
from flows.ops.schedule import check_cron
from flows.warehouse import database


class CliError(Exception):
    """A user error found by a command: printed as one line, exit 2."""


def settings_for(args: argparse.Namespace, *, create: bool = False, write: bool = False,
              snapshot: bool = False) -> Settings:
    """The settings, after checking the warehouse file the command will use: it must be a newsflow warehouse
    (`create`: or missing or empty, for the commands that make one; `write`: of a schema this newsflow knows,
    for the commands that write); `snapshot`: the published snapshot is read."""
    settings = load_settings(getattr(args, "config", None), warehouse=getattr(args, "warehouse", None))
    check_cron(settings, settings.config_path)
    write = write or create
    if settings.warehouse.is_lake:  # a lake has no snapshot file: it is always read live
        database.check_lake(settings.warehouse, create=create, write=write)
        return settings
    if not snapshot:  # the snapshot is judged by database.reader, which says how to publish a missing or damaged one
        database.check_file(settings.warehouse.path, create=create, write=write)
    return settings


QUERY_FILE_LIMIT = 1 << 20  # bytes: a query file is SQL someone wrote, not data


def query_text(arg: str) -> str:
    """The SQL of `arg`, or of the file it names as @file.sql: a regular file of at most 1 MiB of UTF-8."""
    if not arg.startswith("@"):
        return arg
    path = Path(arg[1:])
    try:
        data = read_bounded(path, QUERY_FILE_LIMIT)
    except NotRegularFileError as exc:
        raise CliError(f"{path}: cannot read the query file (it is {exc.kind})") from None
    except FileTooLargeError:
        raise CliError(f"{path}: cannot read the query file (larger than {QUERY_FILE_LIMIT >> 20} MiB)") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read the query file ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{path}: cannot read the query file (not UTF-8 text)") from None


def print_summary(summary: dict[str, Any], *, stage_only: bool = False) -> None:
    keys = ("feeds_ok", "feeds_not_modified", "feeds_failed", "feeds_skipped", "entries_new", "articles_new",
            "fallbacks", "duplicates_exact", "duplicates_near", "entity_mentions", "batches_staged")
    print(f"run {summary.get('run_id', '-')}: {summary.get('status')}")
    print("  " + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    if stage_only and summary.get("status") == "staged":  # it never opened the warehouse to write: not locked
        print(f"  stage-only: {summary.get('batches_staged', 0)} batches staged for the loader (`newsflow load`)")
    elif summary.get("batches_staged"):
        print("  the warehouse was locked: batches are staged and the next run loads them")
    if summary.get("snapshot_error"):
        print(f"  snapshot {summary['snapshot_error']}")
    if summary.get("checks_failed"):
        print(f"  {summary['checks_failed']} warehouse checks failed: see `newsflow status` or `newsflow check`")


def counted(n: int, word: str, plural: str | None = None) -> str:
    """`n` and its noun, singular for one: "1 copy", "2 copies"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"

"""`newsflow snapshot`, `newsflow backup --out DIR` and `newsflow restore --from DIR [--force]`: the copies of
the warehouse (flows/warehouse/snapshot.py, flows/warehouse/backup.py; docs/operations.md)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.cli.common import CliError, settings_for
from flows.core.settings import load_settings
from flows.ops.schedule import check_cron


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None], path: Callable[[str], str]) -> None:
    """The three subcommands (the argument helpers come from flows/cli/arguments.py)."""
    p = sub.add_parser("snapshot", help="publish the read-only snapshot of the warehouse now",
                       description="Copies the warehouse file to [warehouse] snapshot_path atomically (runs do it "
                                   "when it is older than snapshot_every_hours). A lake needs none.")
    common(p)

    p = sub.add_parser("backup", help="write a consistent backup of the warehouse into a new folder while runs go on",
                       description="Copies the warehouse (a lake: its local catalog and data files), the raw-HTML "
                                   "archive and the staged batches into DIR, with a manifest of checksums. A load "
                                   "waits only while the file itself is copied. See docs/operations.md.")
    common(p)
    p.add_argument("--out", required=True, metavar="DIR", type=path, help="a new or empty folder")

    p = sub.add_parser("restore", help="put a backup back in place of the configured warehouse",
                       description="Checks every file of the backup, then writes the warehouse atomically. An "
                                   "existing warehouse is replaced only with --force; never while a run holds it.")
    common(p)
    p.add_argument("--from", dest="source", required=True, metavar="DIR", type=path, help="a `newsflow backup` folder")
    p.add_argument("--force", action="store_true", help="replace the warehouse that is there")


def cmd_snapshot(args: argparse.Namespace) -> int:
    if load_settings(args.config, warehouse=args.warehouse).warehouse.is_lake:
        print("a lake needs no snapshot: its readers query it live")
        return 0
    settings = settings_for(args)
    from flows.warehouse import snapshot

    wh = settings.warehouse
    if not wh.snapshot:
        raise CliError("snapshots are off (`[warehouse] snapshot = false`); turn them on to publish one")
    start = time.perf_counter()
    path = snapshot.publish_snapshot(wh)
    assert path is not None
    print(f"published {path} ({path.stat().st_size / 2**20:.1f} MB) in {time.perf_counter() - start:.2f} s")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    from flows.warehouse import backup

    start = time.perf_counter()
    done = backup.backup(settings, Path(args.out))
    print(f"backup of {done.source} written to {args.out}: {len(done.files)} files, {done.bytes() / 2**20:.1f} MB, "
          f"{done.articles} articles, schema version {done.schema_version} ({time.perf_counter() - start:.2f} s)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    # Not settings_for: the warehouse there may be missing, truncated or damaged, which is why one restores.
    settings = load_settings(args.config, warehouse=args.warehouse)
    check_cron(settings, settings.config_path)
    from flows.warehouse import backup

    start = time.perf_counter()
    done = backup.restore(settings, Path(args.source), force=args.force)
    where = settings.warehouse.catalog if settings.warehouse.is_lake else settings.warehouse.path
    print(f"restored {where} from {args.source} (made {done.created_at}): {done.articles} articles, schema version "
          f"{done.schema_version} ({time.perf_counter() - start:.2f} s); the search index is rebuilt by "
          "`newsflow search --rebuild` or the next run")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "snapshot": cmd_snapshot, "backup": cmd_backup, "restore": cmd_restore}

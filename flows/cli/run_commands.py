"""The commands that fill the warehouse or run Prefect flows: ingest, load, fanout, seeds, demo, serve, reprocess,
maintain."""

from __future__ import annotations

import argparse
import errno
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.cli.common import CliError, print_summary, settings_for
from flows.core.settings import Settings, load_settings
from flows.run import progress, shutdown


def given_warehouse(args: argparse.Namespace, settings: Settings) -> str | None:
    """The flow's `warehouse_path`: the --warehouse the command was given, else None, so that the flow reads the
    config's places as this command did. Passed always, a config's own `staging_dir` and `snapshot_path` were
    replaced by the folder beside the file (what a --warehouse gets), and `status`, `check` and `backup`, which read
    the config's, saw neither the staged batches nor the snapshot."""
    return str(settings.warehouse.path) if getattr(args, "warehouse", None) else None


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = settings_for(args, create=True)
    from flows.run.ingest import ingest, select_feeds

    select_feeds(settings, args.feeds, args.tags)  # unknown names or tags stop here, before a run starts
    shutdown.start_temporary_server()

    with progress.using(progress.for_stream()):
        summary = ingest(feeds=args.feeds, tags=args.tags, max_articles_per_feed=args.max_articles,
                         since=args.since, dry_run=args.dry_run, config=str(settings.config_path),
                         warehouse_path=given_warehouse(args, settings), shard=args.shard,
                         stage_only=args.stage_only)
    print_summary(summary, stage_only=args.stage_only)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    settings = settings_for(args, create=True)
    from flows.run.loader import load

    shutdown.start_temporary_server()
    summary = load(config=str(settings.config_path), warehouse_path=given_warehouse(args, settings))
    print_summary(summary)
    print(f"  {summary.get('batches_loaded', 0)} staged batches loaded"
          + (f", {n} moved to quarantine (`newsflow status` says why)" if (n := summary.get("batches_quarantined"))
             else ""))
    return 0


def cmd_fanout(args: argparse.Namespace) -> int:
    settings = settings_for(args, create=True)
    from flows.ops.fanout import fanout, preflight

    problem = preflight()
    if problem:
        raise CliError(problem)
    summary = fanout(shards=args.shards, max_articles_per_feed=args.max_articles,
                     config=str(settings.config_path), warehouse_path=given_warehouse(args, settings),
                     timeout_seconds=float(args.timeout))
    return fanout_report(summary)


def fanout_report(summary: dict[str, Any]) -> int:
    """Print a fan-out's outcome, each shard's state; a shard or loader run that did not complete is one line on
    stderr naming it, and exit 1 (what it staged is loaded all the same)."""
    from flows.ops.fanout import exit_status

    print(f"fanout of {len(summary['shards'])} shards: {summary['status']}; loader {summary['loader']}")
    for shard, state in summary["shards"].items():
        print(f"  shard {shard}: {state}")
    code, line = exit_status(summary)
    if line:
        sys.stdout.flush()  # the states first, then the error line, also when both go to one pipe
        print(f"newsflow: {line}", file=sys.stderr)
    return code


def cmd_seeds(args: argparse.Namespace) -> int:
    settings = settings_for(args, create=True)
    from flows.run.loader import reload_seeds

    shutdown.start_temporary_server()
    with progress.using(progress.for_stream()):
        result = reload_seeds(config=str(settings.config_path), warehouse_path=given_warehouse(args, settings))
    print(f"{result['seeds_loaded']} seed files loaded, {len(result['errors'])} skipped")
    for err in result["errors"]:
        print(f"  skipped: {err}")
    return 0


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
        from flows.run.ingest import ingest

        shutdown.start_temporary_server()
        try:
            with progress.using(progress.for_stream()):
                summary = ingest(config=str(config), warehouse_path=str(db))
        finally:
            demo.mark(db)  # only once the run made it a newsflow warehouse, whatever happened after
    print_summary(summary)
    print(f"\nwarehouse: {db}\ntry:\n  newsflow sql --warehouse {db} "
          "\"select url, duplicate_of, method, round(similarity, 3) as sim from duplicates\"\n"
          f"  newsflow sql --warehouse {db} \"select * from entity_mentions_top limit 20\"")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_for(args, create=True)
    from flows.ops.deploy import serve

    shutdown.start_temporary_server()
    serve(settings)
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    settings = settings_for(args, write=True)
    from flows.ops.maintenance import Step, reprocess
    from flows.warehouse.runlock import run_lock

    with run_lock(settings.warehouse.path) as free:  # the flow takes it again; this only says so in one line
        if not free:
            raise CliError(f"an ingest or maintenance run holds {settings.warehouse.path}; try again when it ends")
    shutdown.start_temporary_server()

    with progress.using(progress.for_stream()):
        result = reprocess(steps=[Step(s) for s in args.steps or ("dedup", "entities")], only_stale=not args.all,
                           batch_size=args.batch_size, config=str(settings.config_path),
                           warehouse_path=given_warehouse(args, settings))
    for step in ("dedup", "entities", "stories"):
        if step in result:
            print(f"{step}: " + ", ".join(f"{k}={v}" for k, v in result[step].items()))
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    settings = settings_for(args, write=not args.dry_run)
    from flows.ops.maintain import MaintainStep, MaintenanceFailed, maintain
    from flows.warehouse.runlock import run_lock

    with run_lock(settings.warehouse.path) as free:  # the flow waits for it; a person is told at once
        if not free:
            raise CliError(f"an ingest or maintenance run holds {settings.warehouse.path}; try again when it ends")
    shutdown.start_temporary_server()
    try:
        result = maintain(steps=[MaintainStep(s) for s in args.steps or ()], dry_run=args.dry_run,
                          config=str(settings.config_path), warehouse_path=given_warehouse(args, settings))
    except MaintenanceFailed as exc:  # the other steps ran: show them all, then the failure in one line
        _print_steps(exc.rows)
        print(f"newsflow: maintenance step {', '.join(r['step'] for r in exc.rows if r['did'].startswith('failed: '))}"
              " failed (above); the other steps ran", file=sys.stderr)
        return 1
    _print_steps(result["steps"])
    return 0


def _print_steps(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        sizes = f", {row['bytes_before']} -> {row['bytes_after']} bytes" if row["bytes_before"] else ""
        print(f"{row['step']}: {row['did']} ({row['seconds']:.1f} s{sizes})")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest, "load": cmd_load, "fanout": cmd_fanout, "seeds": cmd_seeds, "demo": cmd_demo,
    "serve": cmd_serve, "reprocess": cmd_reprocess, "maintain": cmd_maintain}

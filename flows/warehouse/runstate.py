"""Brief reads of the warehouse that steer a run (feed states, known URLs, stored seeds), tolerant of locks.

These are hints: when the live file is locked they read the published snapshot, and when neither can be read
the run goes on without them. The loader decides for real, inside its transaction (flows/warehouse/writer.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from flows.core.errors import WarehouseError, WarehouseLocked
from flows.core.settings import Settings
from flows.text.seeds import Seed, SeedError, read_seeds
from flows.warehouse import database

log = logging.getLogger("newsflow.runstate")


def _read(settings: Settings, read: Callable[[Any], Any], read_only: bool = False) -> Any:
    """`read(conn)` on the live warehouse; on the published snapshot when the live file stays locked; None when
    neither can be read. The snapshot may be up to `snapshot_every_hours` old: good enough for hints (older
    validators, fewer known URLs cost a re-fetch the loader's dedup drops), never for decisions.
    `read_only`: a stage-only run (a shard), which never takes the write lock and never migrates (the loader's
    job), and reads no hints from a warehouse the loader has not created or migrated yet."""
    wh = settings.warehouse
    try:
        if read_only:
            with database.connect(wh, read_only=True, wait=wh.waits.hints) as conn:
                return read(conn)
        with database.connect(wh, wait=wh.waits.hints) as conn:
            database.migrate(conn)
            return read(conn)
    except WarehouseLocked:
        pass
    except (WarehouseError, duckdb.Error):
        if not read_only:
            raise
        # No warehouse yet, or one the loader has not migrated: the snapshot, else no hints.
    return _read_snapshot(settings, read)


def _read_snapshot(settings: Settings, read: Callable[[Any], Any]) -> Any:
    wh = settings.warehouse
    if not (wh.snapshot and wh.snapshot_path.exists()):
        return None
    try:
        with database.connect(wh, read_only=True, wait=wh.waits.snapshot, path=wh.snapshot_path) as conn:
            return read(conn)
    except (WarehouseError, duckdb.Error):
        return None


def _feed_states(conn: Any) -> dict[str, dict[str, Any]]:
    cur = conn.execute(database.query("feed_states"))
    cols = [d[0] for d in cur.description]
    return {row[0]: dict(zip(cols, row, strict=True)) for row in cur.fetchall()}


def _seed_hashes(conn: Any) -> dict[str, str]:
    return dict(conn.execute(database.query("stored_seeds")).fetchall())


def read_feed_states(settings: Settings, *, read_only: bool = False) -> dict[str, dict[str, Any]]:
    """Stored per-feed state; empty (so no conditional GET this time) when no copy of the warehouse is readable.

    Feeds last fetched by a run that died come without validators, so their entries are read again.
    """
    return _read(settings, _feed_states, read_only) or {}


def known_urls(settings: Settings, urls: list[str], *, read_only: bool = False) -> set[str] | None:
    """Which URLs are already stored; None when the warehouse is locked (then the loader sorts it out)."""
    if not urls:
        return set()
    return _read(settings, lambda conn: {
        r[0] for r in conn.execute(database.query("known_urls"), {"urls": urls}).fetchall()
    }, read_only)


def stored_seed_hashes(settings: Settings) -> dict[str, str] | None:
    return _read(settings, _seed_hashes)


def mark_abandoned(settings: Settings, run_id: str) -> None:
    """Runs still marked running died without finishing (this run holds the run lock, so none is alive)."""
    try:
        with database.connect(settings.warehouse, wait=settings.warehouse.waits.hints) as conn:
            database.migrate(conn)
            conn.execute(database.query("mark_abandoned"), {"run_id": run_id})
    except WarehouseLocked:
        pass  # the next run that finds the warehouse free marks them


def seeds_to_load(settings: Settings, stored: dict[str, str] | None = None) -> tuple[list[Seed], list[SeedError]]:
    """Seed files that are new or changed since they were loaded (`stored`: name -> hash of those loaded, read
    from the warehouse when not given), and errors for unreadable ones."""
    folder = settings.pipeline.seeds_dir
    if not folder.is_dir():  # "0 seed files loaded" said nothing of a folder moved or mistyped
        log.warning("the seeds folder %s is %s: no seed file is read", folder,
                    "a file, not a folder" if folder.exists() else "missing")
    seeds, errors = read_seeds(folder, settings.fetch.max_page_bytes)
    if stored is None:
        stored = stored_seed_hashes(settings) or {}
    return [s for s in seeds if stored.get(s.name) != s.file_hash], errors


@dataclass(frozen=True)
class RunStart:
    ready: bool  # the live warehouse was opened: created or migrated, old raw HTML purged
    feed_states: dict[str, dict[str, Any]]
    seed_hashes: dict[str, str] | None  # None: not read (a stage-only run leaves seeds to the loader)


def start_run(settings: Settings, run_id: str, *, mark_dead: bool, read_only: bool = False) -> RunStart:
    """What an ingest does before it fetches, over one connection: create or migrate the warehouse and purge raw
    HTML past retention (database.ensure_ready), mark dead runs abandoned when `mark_dead`, read the feed states
    and the stored seed hashes. Four connections did this: each costs 25-35 ms to open, migrate-check and close,
    a sixth of a run with nothing new.

    Locked past the full lock wait, as ensure_ready would be: `ready` is False, nothing is marked (the next run
    that finds the warehouse free does it) and the reads come from the published snapshot, or are empty. A
    `read_only` run (a stage-only shard) never takes the write lock: its feed states are read as
    read_feed_states reads them.
    """
    if read_only:
        return RunStart(False, read_feed_states(settings, read_only=True), None)
    wh = settings.warehouse
    try:
        with database.connect(wh) as conn:
            database.prepare(conn, wh)
            if mark_dead:
                conn.execute(database.query("mark_abandoned"), {"run_id": run_id})
            return RunStart(True, _feed_states(conn), _seed_hashes(conn))
    except WarehouseLocked:
        states, seeds = _read_snapshot(settings, lambda conn: (_feed_states(conn), _seed_hashes(conn))) or ({}, {})
        return RunStart(False, states, seeds)

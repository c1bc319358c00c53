"""The maintenance steps, without Prefect: each takes the settings and the run's id, does its work (or, dry, only
measures it) and returns a `StepResult` for the run's table artifact. The maintenance flow (flows/ops/maintain.py)
runs them in STEPS order under the warehouse's run lock; docs/operations.md "Maintenance" tells what each does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flows.core.settings import Settings, WarehouseSettings
from flows.warehouse import (
    archive,
    checks,
    compact,
    database,
    keycache,
    lake,
    rollup,
    search_index,
    search_segments,
    snapshot,
)
from flows.warehouse.database import query
from flows.warehouse.search_segments import read_head


@dataclass
class StepResult:
    """One row of the maintenance run's table artifact."""
    step: str
    did: str  # what it did, or why it did nothing
    bytes_before: int = 0  # of what it works on: the file, the lake's data, the raw archive, the cache
    bytes_after: int = 0
    rows_rolled_up: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        return asdict(self)


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder; 0 when missing."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _warehouse_bytes(settings: Settings) -> int:
    wh = settings.warehouse
    if wh.is_lake:
        data = wh.lake_data_path
        return 0 if "://" in data else size_of(Path(data))
    return size_of(wh.path)


def migrate(settings: Settings) -> None:
    """Bring the warehouse to this newsflow's schema first (the roll-up writes tables of migration 0012), as a
    run's start does."""
    with database.connect(settings.warehouse) as conn:
        database.migrate(conn)


def step_rollup(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    days = settings.maintenance.rollup_after_days
    if days <= 0:
        return StepResult("rollup", "off ([maintenance] rollup_after_days = 0)")
    before = _warehouse_bytes(settings)
    with database.connect(settings.warehouse, read_only=dry_run) as conn:
        if dry_run and database.schema_version(conn) < len(database.migrations()):
            return StepResult("rollup", "the warehouse is not migrated yet (the next ingest or maintain does)")
        done = rollup.roll_up(conn, days, dry_run=dry_run)
    detail = ", ".join(f"{t} {n}" for t, n in done.rows.items())
    verb = "would roll up" if dry_run else "rolled up"
    return StepResult("rollup", f"{verb} rows before {done.cutoff:%Y-%m-%d %H:%M} UTC into daily summaries: {detail}",
                      before, _warehouse_bytes(settings), done.total)


def step_raw(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    wh = settings.warehouse
    days = wh.raw_html_retention_days
    if days <= 0:
        return StepResult("raw", "off ([warehouse] raw_html_retention_days = 0)")
    before = size_of(wh.raw_dir)
    with database.connect(wh, read_only=dry_run) as conn:
        if dry_run:
            n = conn.execute("select count(*) from raw_archive where fetched_at < now() - to_days($days::integer)",
                             {"days": days}).fetchall()[0][0]
            bad, away = _check_archive(conn, wh)
            return StepResult("raw", f"would drop {n} raw-HTML pointers older than {days} days"
                              + (f"; {_files(bad, 'unreadable')}: would set aside" if bad else "")
                              + (f"; {_files(away, 'not reachable')}: left as they are" if away else ""),
                              before, before)
        n = database.purge_raw_html(conn, days, raw_dir=wh.raw_dir)
        did = f"dropped {n} raw-HTML rows older than {days} days and the day folders no row uses"
        # An archive file cut short or overwritten on disk: its pages are lost, and its pointers would keep saying
        # otherwise (article_provenance.has_raw_html) while every read of the archive fails on it. A file missing or
        # failing with an I/O error is only reported: a folder not mounted, or a copy of the warehouse without its
        # archive, must not cost the pointers of pages that are still there.
        bad, away = _check_archive(conn, wh)
        if bad:
            lost = conn.execute(query("raw_archive_forget"), {"files": sorted(bad)}).fetchone()[0]
            for rel in bad:
                archive.set_aside(wh.raw_dir, rel)
            did += (f"; {_files(bad, 'unreadable')}: set aside in {wh.raw_dir / archive.DAMAGED}, its {lost} pages' "
                    "pointers dropped (the articles keep their text)")
        if away:
            did += f"; {_files(away, 'not reachable')}: left as they are, pointers kept"
    return StepResult("raw", did, before, size_of(wh.raw_dir))


def _check_archive(conn: duckdb.DuckDBPyConnection, wh: WarehouseSettings
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """archive.unreadable of every archive file a pointer names (after the retention's purge, in a real run)."""
    return archive.unreadable(wh.raw_dir, [r[0] for r in conn.execute(query("raw_archive_files")).fetchall()])


def _files(found: dict[str, str], what: str) -> str:
    first, why = next(iter(sorted(found.items())))
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{len(found)} archive file{'s' if len(found) > 1 else ''} {what} ({first}: {why}{more})"


def step_checks(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    wh = settings.warehouse
    if dry_run:
        with database.connect(wh, read_only=True) as conn:
            results = checks.run_checks(conn, staging_dir=wh.staging_dir, alive_runs=[run_id], dedup=settings.dedup)
    else:
        # Runs check only what they loaded; this is the pass over every row (docs/checks.md).
        results = checks.run_and_store(wh, run_id, alive_runs=[run_id], dedup=settings.dedup, full=True).results
    failed = [r.name for r in results if r.failed]
    ran = sum(1 for r in results if r.skipped is None)
    return StepResult("checks", f"{ran} checks ran over every row{' (not stored: dry run)' if dry_run else ''}; "
                                + (f"failing: {', '.join(failed)}" if failed else "all hold"))


def step_lake(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    if not settings.warehouse.is_lake:
        return StepResult("lake", "not a DuckLake")
    days = settings.maintenance.lake_snapshot_days
    if days <= 0:
        return StepResult("lake", "off ([maintenance] lake_snapshot_days = 0)")
    before = _warehouse_bytes(settings)
    with database.connect(settings.warehouse) as conn:
        done = lake.upkeep(conn, datetime.now(UTC) - timedelta(days=days), dry_run=dry_run)
    did = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items())
    return StepResult("lake", ("dry run: " if dry_run else "") + did, before, _warehouse_bytes(settings))


def step_compact(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    m = settings.maintenance
    done = compact.compact(settings.warehouse, min_free_ratio=m.compact_free_ratio,
                           min_free_bytes=m.compact_min_free_bytes, dry_run=dry_run)
    did = f"compacted ({done.free_ratio:.0%} free before)" if done.done else done.reason
    return StepResult("compact", did, done.bytes_before, done.bytes_after, 0, done.seconds)


def step_cache(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    """The dedup lookup cache, rebuilt when missing or stale (loads never rebuild it), brought up to date when
    behind; the search index, built when missing, else compared with every stored article."""
    wh = settings.warehouse
    parts, before, after = [], 0, 0
    if not wh.is_lake:
        folder = wh.path.parent / f"{wh.path.name}.keys"
        before = size_of(folder)
        with database.connect(wh, read_only=True) as conn:
            state = keycache.status(conn, folder)
            if state in ("missing", "stale", "behind") and not dry_run:
                keycache.refresh(conn, folder)
        did = {"missing": "rebuilt", "stale": "rebuilt", "behind": "brought up to date"}.get(state)
        parts.append(f"lookup cache {state}" + (f": {did}" if did and not dry_run else ""))
        after = size_of(folder)
    head, damaged = _search_index_state(wh)
    if head is None or damaged:
        # A segment cut short or overwritten on disk would fail every search until rebuilt: rebuilt here, nightly.
        state = f"search index damaged ({damaged})" if damaged else "search index missing"
        if dry_run:
            parts.append(state)
        else:
            done = search_index.refresh(settings, rebuild=True, wait=wh.waits.load)
            parts.append(f"{state}: {done.mode}" + (f" ({done.reason})" if done.reason else ""))
    elif dry_run:
        parts.append("search index present: would compare every article with it")
    else:
        # Runs read only what loads wrote since the index's mark; what changed otherwise (a text edited by hand,
        # rows deleted and added in equal number) is found here, daily.
        done = search_index.refresh(settings, full=True, wait=wh.waits.load)
        parts.append("search index present: compared with every article" + (
            f" ({done.indexed} indexed)" if done.mode != "skipped" else f", skipped ({done.reason})"))
    return StepResult("cache", "; ".join(parts), before, after)


def _search_index_state(wh: WarehouseSettings) -> tuple[object | None, str | None]:
    """(the index's head or None, why one of its segments cannot be read whole or None). A run's refresh may merge a
    segment away between reading the head and checking its files: a problem counts only if the head read again
    still names that segment and the check finds it again (a false alarm would cost a whole rebuild)."""
    folder = search_index.segments_dir(wh)
    head = read_head(wh.search_path)
    for name, _ in head[1] if head else ():
        if search_segments.problem(folder, name, tables=True) is None:
            continue
        head = read_head(wh.search_path)
        if head is not None and name in {n for n, _ in head[1]}:
            found = search_segments.problem(folder, name, tables=True)
            if found is not None:
                return head, found
    return head, None


def step_snapshot(settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    """The read-only snapshot, published when missing or older than the warehouse's last write: nightly, the copy
    runs would otherwise make once their `snapshot_every_hours` interval has passed lands here, off a run."""
    wh = settings.warehouse
    if wh.is_lake or not wh.snapshot:
        return StepResult("snapshot", "not used (a lake, or [warehouse] snapshot = false)")
    at, written = snapshot.published_at(wh), snapshot.last_change(wh.path)
    if at is not None and (written is None or written <= at):
        return StepResult("snapshot", "current: the warehouse has not changed since it was published")
    if dry_run:
        why = "missing" if at is None else "older than the warehouse"
        return StepResult("snapshot", f"would publish ({why})")
    before = size_of(wh.snapshot_path)
    snapshot.publish_snapshot(wh, wait=wh.waits.load)
    return StepResult("snapshot", "published", before, size_of(wh.snapshot_path))


Step = Callable[[Settings, str, bool], StepResult]
# In this order: the roll-up and the purge free space that the compaction then gives back; the checks see the
# warehouse as maintained; the caches and the snapshot are made from the final file.
STEPS: dict[str, Step] = {"rollup": step_rollup, "raw": step_raw, "checks": step_checks, "lake": step_lake,
                          "compact": step_compact, "cache": step_cache, "snapshot": step_snapshot}


def run_step(name: str, settings: Settings, run_id: str, dry_run: bool) -> StepResult:
    start = time.perf_counter()
    result = STEPS[name](settings, run_id, dry_run)
    if not result.seconds:
        result.seconds = round(time.perf_counter() - start, 3)
    return result

"""Stage 4, load: stage each batch durably, then load staged batches oldest first (flows/warehouse/writer.py decides).

Also the pre-check that spares NER for documents the warehouse already has a copy of.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb

from flows.core.errors import StagingError, WarehouseError, WarehouseLocked, describe, pause_point
from flows.core.records import Document
from flows.core.settings import Settings, WarehouseSettings
from flows.core.stats import RunStats
from flows.warehouse import candidates, database, staging
from flows.warehouse.staging import stable_key
from flows.warehouse.writer import LoadResult, decide, load_batch, signature_of

log = logging.getLogger("newsflow.store")
# What a load fails with when the batch's own data is what it cannot take (a date out of range, a value no column
# holds): it fails the same way at every try, so the batch is quarantined and the batches after it, and every later
# run, load. Anything else (the warehouse held, a full disk, memory, an interrupt, a damaged database) may pass: the
# batch stays staged and the error ends the load, as it always did.
_BAD_DATA = (ValueError, ArithmeticError, TypeError, LookupError, duckdb.DataError, duckdb.IntegrityError,
             duckdb.InvalidInputException)
COPY_REASON = "copy: the pre-check found it an exact copy or a copy of a stored article, so it was not tagged"


def precheck(settings: Settings, docs: list[Document], *, before: list[Document] | None = None,
             read_only: bool = False) -> list[bool]:
    """Which documents can skip NER because the loader is sure to record them as copies.

    Only verdicts that cannot change by load time count: an exact copy (whatever its original becomes, the same
    text is a copy of it), a URL already stored, and a copy of an article already in the warehouse. A near copy
    of a document not loaded yet is tagged anyway: that document may itself turn out a copy of something
    loaded meanwhile, and then the near copy would be stored, so skipping NER for it would make the entities
    depend on load timing. `before` is the batch staged just before these, already pre-checked (its copies
    carry `COPY_REASON`), maybe loaded by now, maybe not.

    `before` is not judged again: that doubled the pre-check, the largest part of the parent's CPU in the
    benchmark (docs/benchmarks.md). Its pre-check said which of its documents are loaded as articles or copies
    of them (the ones it did not find copies), and an exact copy of one of those is a copy whatever they become.

    `read_only`: a stage-only run (a shard), which opens the warehouse read-only and, before the first load,
    finds none to compare with.
    """
    if not docs:
        return []
    # Signed by the workers with these settings, moments ago: once stored, each is a candidate of the copies in
    # later batches, and its text need not be read back and signed again (candidates.stored_signatures).
    candidates.remember(((stable_key(d.url), signature_of(d)) for d in docs), settings.dedup)
    before = before or []
    unloaded = {stable_key(d.url) for d in before + docs}
    earlier = {d.text_hash for d in before if d.ner_skip_reason != COPY_REASON}
    try:
        with database.connect(settings.warehouse, read_only=read_only, wait=settings.warehouse.waits.precheck) as conn:
            with database.transaction(conn):
                verdicts = decide(conn, docs, settings.dedup)
    except WarehouseLocked:
        return [False] * len(docs)
    except (WarehouseError, duckdb.Error):
        if not read_only:
            raise
        return [False] * len(docs)  # a shard run before the first load: no warehouse to compare with yet
    return [v.status == "known" or d.text_hash in earlier
            or (v.status == "duplicate" and v.match is not None and
                (v.match.method == "exact" or v.duplicate_of not in unloaded))
            for d, v in zip(docs, verdicts, strict=True)]


def store(settings: Settings, batch: staging.Batch, *, checkpoint: bool = True) -> LoadResult | None:
    """Stage the batch durably, then load it after any batch staged before it; None when the warehouse stayed
    locked (the batch stays staged for the next run). The result counts every batch loaded by this call.

    Without `checkpoint` the commits stay in the write-ahead log when the connection closes (committed and
    fsynced all the same; the next connection replays it, DuckDB checkpoints past 16 MB of log): folding the
    log into the file at every close was 17% of a run's single writer, so a run checkpoints once, with its
    last batch, and the file at rest has no log."""
    wh = settings.warehouse
    backlog = staging.pending(wh.staging_dir)
    path = staging.write(batch, wh.staging_dir)
    pause_point("staged")
    # Behind a batch that already found the lock held, wait briefly: the run's last batch, or the next run,
    # loads the backlog in order.
    wait = wh.waits.backlog if backlog else wh.waits.load
    total = LoadResult()
    loaded = _load_in_order(settings, [*backlog, path], total, wait=wait, checkpoint=checkpoint, run_id=batch.run_id)
    return total if loaded else None


def _load_in_order(settings: Settings, paths: list[Path], total: LoadResult, *, wait: float | None = None,
                   checkpoint: bool = True, run_id: str | None = None) -> bool:
    """Load the staged batches oldest first over one connection, each in its own transaction, removing each
    once committed; one that cannot be read, or that fails on its own data (_BAD_DATA), is quarantined (`run_id`
    moved it) and the rest load. False when the warehouse stayed locked (nothing was loaded)."""
    if not paths:
        return True
    try:
        with database.connect(settings.warehouse, wait=wait) as conn:
            if not checkpoint and not settings.warehouse.is_lake:
                conn.execute("pragma disable_checkpoint_on_shutdown")
            database.migrate(conn)
            for path in sorted(set(paths)):
                try:
                    batch = staging.read(path)
                except StagingError as exc:
                    quarantine(conn, path, str(exc), run_id)
                    # Its pages are fetched again only if the feeds are read again: an unchanged feed (the same
                    # body, or a 304) was not, and its entries waited for the feed to change.
                    conn.execute(database.query("feeds_read_again"))
                    continue
                try:
                    result = load_batch(conn, batch, settings.dedup, raw_dir=settings.warehouse.raw_dir,
                                        stories=settings.stories)
                except _BAD_DATA as exc:  # rolled back: its transaction wrote nothing
                    log.exception("staged batch %s failed to load", path.name)
                    quarantine(conn, path, f"load failed: {describe(exc)}", run_id)
                    continue
                # Killed between the commit and this removal, the batch is loaded again: a no-op.
                staging.remove(path)
                for name in ("new", "exact", "near", "known", "mentions"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
    except WarehouseLocked:
        return False
    return True


def quarantine(conn: duckdb.DuckDBPyConnection, path: Path, reason: str, run_id: str | None) -> Path:
    """Move a staged batch that cannot be loaded aside, record it in `staged_quarantine` and log it at ERROR: one bad
    file must not stop the batches after it, nor every later run (the check `quarantined_batches` fails until
    someone deals with it: docs/operations.md)."""
    # Moved first: a crash before the row leaves it in quarantine, where the check still finds it.
    target = staging.quarantine(path)
    conn.execute(database.query("quarantine_insert"),
                 {"batch_id": path.name, "path": str(target), "reason": reason, "run_id": run_id})
    log.error("staged batch %s cannot be loaded (%s): moved to %s; the other batches load "
              "(see docs/operations.md, 'A quarantined batch')", path.name, reason, target)
    return target


def adopt_beside(wh: WarehouseSettings) -> list[Path]:
    """Move batches staged beside the file (`<stem>.staging/`) into the configured staging folder when they differ.
    Until 2026-12-08 the commands' runs staged there whatever the config said (flows/cli/run_commands.py
    `given_warehouse`), as a run given --warehouse still does: a batch left there by a locked run before an upgrade,
    or by a --warehouse run, is the same warehouse's and must load."""
    beside = wh.path.with_name(f"{wh.path.stem}.staging")
    if wh.is_lake or beside.absolute() == wh.staging_dir.absolute():
        return []
    moved = []
    for batch in staging.pending(beside):
        target = wh.staging_dir / batch.name
        if target.exists():
            continue  # staged in both places: the configured one loads, this one is left for a person
        wh.staging_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(batch, target)
        log.warning("staged batch %s was beside the warehouse in %s: moved to %s to load", batch.name, beside,
                    wh.staging_dir)
        moved.append(target)
    return moved


def report_strays(staging_dir: Path) -> list[Path]:
    """Log what lies in the staging folder and is not a batch (left alone: it is not newsflow's)."""
    found = staging.strays(staging_dir)
    for path in found:
        log.warning("%s is in the staging folder but is not a staged batch: left alone, not loaded", path)
    return found


def record_run(settings: Settings, batch: staging.Batch, *, stage_only: bool = False) -> None:
    """Stage a batch holding a run's last rows (a failed run's row) and load it with the backlog, waiting only
    briefly; a stage-only run only stages it. Raises WarehouseError, and writes nothing, when the warehouse is
    missing or not one a writer may use: a failed run never creates a warehouse nor writes into a stranger's."""
    wh = settings.warehouse
    if stage_only:
        staging.write(batch, wh.staging_dir)
        return
    if wh.is_lake:
        database.check_lake(wh, write=True)
    else:
        database.check_file(wh.path, write=True)
    path = staging.write(batch, wh.staging_dir)
    _load_in_order(settings, [*staging.pending(wh.staging_dir), path], LoadResult(),
                   wait=wh.waits.backlog, run_id=batch.run_id)


def load_staged(settings: Settings, path: Path) -> LoadResult | None:
    """Load one staged batch; None when the warehouse stayed locked."""
    total = LoadResult()
    return total if _load_in_order(settings, [path], total) else None


def load_pending(settings: Settings, stats: RunStats | None = None, run_id: str | None = None) -> tuple[int, int]:
    """Load batches earlier runs left staged, oldest first. Returns (loaded or quarantined, still staged).

    Leftovers of interrupted staging writes are removed too; what is no batch is reported and left alone.
    """
    staging.remove_partial(settings.warehouse.staging_dir)
    report_strays(settings.warehouse.staging_dir)
    adopt_beside(settings.warehouse)
    paths = staging.pending(settings.warehouse.staging_dir)
    total = LoadResult()
    if not _load_in_order(settings, paths, total, run_id=run_id):
        return 0, len(paths)
    if stats:
        stats.add_load(total)
    return len(paths), 0

"""Compaction of the DuckDB warehouse file: DuckDB reuses the blocks of deleted rows but never gives them back to
the disk, so a file that shed rows (a roll-up, the raw-HTML purge, `reprocess`) stays at its largest. Compacting
copies every table and view into a new file (`COPY FROM DATABASE`) and renames it over the old one.

Why it is safe beside readers: the old file is attached read-only for the copy, so any number of readers go on
reading it meanwhile (DuckDB's shared lock), and a writer cannot change it under the copy. The new file is complete
on disk (written, checkpointed, fsynced, its row counts compared with the old one's) before `os.replace` swaps it
in, still under that shared lock; a reader that opened the old file keeps reading it (POSIX keeps the replaced inode
alive while it is open) and sees the data as it was, and the next open reads the new file, which holds the same.
The caller holds the warehouse's run lock (flows/warehouse/runlock.py), so no ingest loads while it copies.

Side files stay consistent: the lookup cache (`<file>.keys/`) and the search index hold article ids and load
sequence numbers, which the copy keeps; the new file has no WAL (it is checkpointed before the swap), and the old
one's is checkpointed into it first; the temporary `<file>.compact.tmp` is a `<file>.*` name the write guard
(flows/core/owned.py) already treats as the warehouse's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flows.core.errors import WarehouseLocked
from flows.core.files import fsync
from flows.core.settings import WarehouseSettings
from flows.warehouse import database


@dataclass(frozen=True)
class Space:
    """A DuckDB file's size and how much of it a copy would not write: its free blocks (`pragma database_size`)
    and the share of each table's blocks that deleted rows still fill (a checkpoint keeps a row group whole
    until it is rewritten, so most deleted rows free no block)."""
    file_bytes: int
    block_size: int
    total_blocks: int
    free_blocks: int
    dead_blocks: float = 0.0

    @property
    def free_bytes(self) -> int:
        return int((self.free_blocks + self.dead_blocks) * self.block_size)

    @property
    def free_ratio(self) -> float:
        return (self.free_blocks + self.dead_blocks) / self.total_blocks if self.total_blocks else 0.0


@dataclass(frozen=True)
class Compaction:
    """What a compaction did: `done`, or why not (`reason`), the file's bytes before and after, and the time."""
    done: bool
    reason: str
    bytes_before: int
    bytes_after: int
    seconds: float
    free_ratio: float = 0.0


def temp_path(path: Path) -> Path:
    return path.with_name(path.name + ".compact.tmp")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"  # ATTACH takes no prepared parameters


def space(conn: duckdb.DuckDBPyConnection, name: str, path: Path) -> Space:
    row = conn.execute("select block_size, total_blocks, free_blocks from pragma_database_size() "
                       "where database_name = ?", [name]).fetchall()[0]
    dead = 0.0
    stored_rows = dict(conn.execute("select table_name, estimated_size from duckdb_tables() "
                                    "where database_name = ? and not internal", [name]).fetchall())
    for table in _tables(conn, name):
        live = conn.execute(f'select count(*) from {name}."{table}"').fetchall()[0][0]
        if stored_rows.get(table, 0) <= live:
            # The catalog's row count keeps deleted rows until their row groups are rewritten: none here, so
            # nothing to weigh. pragma_storage_info would read every segment of every column to confirm it,
            # 3.9 s and 2.6 GB for `articles` at 1M, most of a nightly `maintain`'s peak memory.
            continue
        # Rows stored (deleted ones included: segments keep them) and the blocks they fill. pragma_storage_info
        # takes no parameter; the name is the catalog's own, quoted.
        stored, blocks = conn.execute(
            "select coalesce(sum(count) filter (where column_id = 0 and segment_type <> 'VALIDITY'), 0), "
            f"count(distinct block_id) from pragma_storage_info({_literal(f'{name}.main.{table}')})").fetchall()[0]
        if stored > live:
            dead += blocks * (stored - live) / stored
    return Space(path.stat().st_size, int(row[0]), int(row[1]), int(row[2]), dead)


def _tables(conn: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [r[0] for r in conn.execute("select table_name from duckdb_tables() where database_name = ? "
                                       "and not internal order by 1", [name]).fetchall()]


def _attach_old(conn: duckdb.DuckDBPyConnection, path: Path, wait: float) -> None:
    """Attach the live file read-only as `old`, waiting with backoff while a writer holds it."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            conn.execute(f"attach {_literal(str(path))} as old (read_only)")
            return
        except duckdb.Error as exc:
            if not database.is_lock_error(exc) or time.monotonic() + delay > deadline:
                if database.is_lock_error(exc):
                    raise WarehouseLocked(f"{path} is held by a writer (waited {wait:g} s)") from None
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _checkpoint_wal(settings: WarehouseSettings) -> None:
    """Fold a left-over WAL into the file first: the copy must not leave it beside the new file, whose changes
    it does not describe."""
    if Path(f"{settings.path}.wal").exists():
        with database.connect(settings, wait=settings.waits.load) as conn:
            conn.execute("checkpoint")


def _counts(conn: duckdb.DuckDBPyConnection, name: str) -> dict[str, int]:
    # Table names come from the catalog, quoted as identifiers.
    return {t: conn.execute(f'select count(*) from {name}."{t}"').fetchall()[0][0] for t in _tables(conn, name)}


def compact(settings: WarehouseSettings, *, min_free_ratio: float, min_free_bytes: int = 0,
            dry_run: bool = False) -> Compaction:
    """Compact the warehouse file when its free blocks are at least `min_free_ratio` of it and `min_free_bytes`.
    The caller holds the run lock. Raises WarehouseLocked when a writer holds the file past the load wait."""
    start = time.perf_counter()
    path = settings.path
    if settings.is_lake:
        return Compaction(False, "a DuckLake: its files are merged by the ducklake step", 0, 0, 0.0)
    if not path.exists():
        return Compaction(False, "no warehouse yet", 0, 0, 0.0)
    if not dry_run:
        _checkpoint_wal(settings)
    tmp = temp_path(path)
    conn = duckdb.connect(":memory:")
    try:
        _attach_old(conn, path, settings.waits.load)
        before = space(conn, "old", path)

        def skip(reason: str) -> Compaction:
            return Compaction(False, reason, before.file_bytes, before.file_bytes,
                              round(time.perf_counter() - start, 3), before.free_ratio)

        if before.free_ratio < min_free_ratio or before.free_bytes < min_free_bytes:
            # Both must be passed: a share alone would copy a small file for a few megabytes.
            return skip(f"{before.free_ratio:.0%} free ({before.free_bytes} bytes): below the threshold "
                        f"(at least {min_free_ratio:.0%} and {min_free_bytes} bytes free)")
        if dry_run:
            return skip(f"dry run: would compact ({before.free_ratio:.0%} free, {before.free_bytes} bytes)")
        for stale in (tmp, Path(f"{tmp}.wal")):
            stale.unlink(missing_ok=True)
        conn.execute(f"attach {_literal(str(tmp))} as new (storage_version {_literal(settings.storage_compatibility)})")
        conn.execute("copy from database old to new")
        conn.execute("detach new")  # checkpoints: everything in the file, no WAL beside it
        conn.execute(f"attach {_literal(str(tmp))} as new (read_only)")
        same = _counts(conn, "old") == _counts(conn, "new")
        conn.execute("detach new")
        if not same:
            tmp.unlink(missing_ok=True)
            raise database.WarehouseError(f"{path}: compaction copy differs from the file; the file is unchanged")
        fsync(tmp)
        os.replace(tmp, path)  # still under the old file's shared lock: no writer slipped in since the copy
        fsync(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return Compaction(True, "", before.file_bytes, path.stat().st_size, round(time.perf_counter() - start, 3),
                      before.free_ratio)

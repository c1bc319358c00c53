"""Durable staging: every batch is written as Parquet before the warehouse is opened, and removed once loaded.

A batch directory appears atomically (written under a temporary name, fsynced, then renamed), so a run killed
while staging leaves either a whole batch or only a `.tmp` directory that is cleaned up. A batch that could not
be loaded (warehouse locked, process killed) is loaded by the next run, before its own work; batches load in
name order (run start time, run id, sequence), so a later batch never overwrites an earlier one's state.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("runs", "feeds", "feed_fetches", "entries", "page_fetches", "docs")


def stable_key(text: str) -> int:
    """Signed 64-bit key of a string, for article ids."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


@dataclass
class Batch:
    batch_id: str  # sortable: run start time, run id, sequence number
    run_id: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.tables.get(table, [])

    def add(self, table: str, *rows: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).extend(rows)


def fsync(path: Path) -> None:
    """Force a file's (or a directory's entries') contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(batch: Batch, staging_dir: Path, *, durable: bool = True) -> Path:
    """Stage the batch; with `durable`, its files and directory entry are on disk before this returns."""
    final = staging_dir / batch.batch_id
    if final.exists():  # a retry of the same batch (ids are unique per run): the staged copy already holds it
        return final
    tmp = staging_dir / f"{batch.batch_id}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / "run_id").write_text(batch.run_id)
    for name, rows in batch.tables.items():
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), tmp / f"{name}.parquet", compression="zstd")
    if durable:
        for file in tmp.iterdir():
            fsync(file)
        fsync(tmp)
    tmp.rename(final)
    if durable:
        fsync(staging_dir)
    return final


def pending(staging_dir: Path) -> list[Path]:
    """Complete staged batches, oldest first."""
    if not staging_dir.exists():
        return []
    return [p for p in sorted(staging_dir.iterdir()) if p.is_dir() and not p.name.endswith(".tmp")]


def remove_partial(staging_dir: Path, older_than: float = 3600.0) -> int:
    """Delete what interrupted writes left: `.tmp` directories untouched for `older_than` seconds (a batch is
    written in well under a second, and another process may be writing one right now)."""
    if not staging_dir.exists():
        return 0
    cutoff = time.time() - older_than
    partial = [p for p in staging_dir.iterdir() if p.name.endswith(".tmp") and p.stat().st_mtime < cutoff]
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return len(partial)


def read(path: Path) -> Batch:
    batch = Batch(batch_id=path.name, run_id=(path / "run_id").read_text())
    for name in TABLES:
        file = path / f"{name}.parquet"
        if file.exists():
            batch.tables[name] = pq.read_table(file).to_pylist()
    return batch


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

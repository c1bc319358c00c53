"""Raw HTML archives: Parquet files beside the warehouse, one per loaded batch, with a pointer row per URL in
the warehouse table `raw_archive`.

Kept out of the DuckDB file because ~1.2 GB of compressed pages at 100k articles made the checkpoint that
closes every load take ~30 s, holding the file lock. A file is complete on disk (temporary name, fsync,
rename) before the transaction that points at it commits, so a crash leaves at worst a file nobody points
at, which retention removes. SQL reads the files directly: read_parquet('<stem>.raw/**/*.parquet'); a URL's page
is read back by flows/warehouse/export.py `read_raw_html`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.core.files import fsync

DAMAGED = "damaged"  # the folder under the `.raw` folder that archive files which cannot be read are moved to
SCHEMA = pa.schema([
    ("url", pa.string()),
    ("fetched_at", pa.timestamp("us", tz="UTC")),
    ("encoding", pa.string()),  # zstd, or zlib for pages written before (flows/warehouse/rawcodec.py)
    ("html", pa.binary()),
])


def write_archive(raw_dir: Path, batch_id: str, day: date, rows: list[dict[str, Any]]) -> str:
    """Write one batch's pages durably; returns the file's path relative to `raw_dir`. Writing the same batch
    again replaces the file whole."""
    rel = f"{day:%Y-%m-%d}/{batch_id}.parquet"
    final = raw_dir / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")  # not matched by *.parquet globs while it is incomplete
    # The pages are compressed already: compressing them again costs time and saves nothing.
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp, compression="none")
    fsync(tmp)
    os.replace(tmp, final)
    fsync(final.parent)
    fsync(raw_dir)
    return rel


def expired_days(raw_dir: Path, retention_days: int) -> list[str]:
    """Names of the day folders whose every file is older than the retention (0 days: none). A folder named after
    a day that began within the retention is skipped unlisted: write_archive names it after the day it writes in,
    so none of its files is old enough (listing all 90 folders' files took 20-40 ms of every run's start)."""
    if retention_days <= 0 or not raw_dir.exists():
        return []
    cutoff = time.time() - retention_days * 86400
    expired = []
    for folder in raw_dir.iterdir():
        if not folder.is_dir():
            continue
        try:
            if datetime.strptime(folder.name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() >= cutoff:
                continue
        except ValueError:  # not named by write_archive: judged by its files alone
            pass
        if all(f.stat().st_mtime < cutoff for f in folder.iterdir()):
            expired.append(folder.name)
    return sorted(expired)


def unreadable(raw_dir: Path, files: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({file: why} damaged, {file: why} not reachable) of the archive files named (relative to `raw_dir`).
    Damaged: read, but not a whole archive (not Parquet at its start or end: cut short, overwritten; or of other
    columns). Not reachable: missing, or an I/O error: maybe a folder not mounted or a warehouse copied without its
    archive, so only reported, never acted upon. Reads each file's first bytes and its footer only (about a
    millisecond a file: 7.6 s for the 8,640 files of 90 days at a year's cadence), not its pages."""
    damaged: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    root = raw_dir.resolve()
    for rel in files:
        path = raw_dir / rel
        if not path.resolve().is_relative_to(root):  # a pointer edited to name another file: never touched
            unreachable[rel] = "outside the archive folder"
            continue
        try:
            with path.open("rb") as f:
                if f.read(4) != b"PAR1":
                    raise ValueError("not a Parquet file at its start")
            names = pq.read_metadata(path).schema.to_arrow_schema().names
            if names != SCHEMA.names:
                raise ValueError(f"columns {names}, not the archive's")
        except FileNotFoundError:
            unreachable[rel] = "missing"
        except ValueError as exc:  # pyarrow's ArrowInvalid is one: a footer that does not parse
            damaged[rel] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        except OSError as exc:
            unreachable[rel] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return damaged, unreachable


def set_aside(raw_dir: Path, rel: str) -> Path | None:
    """Move a damaged archive file to `<raw_dir>/damaged/<rel>.damaged`, out of every `*.parquet` glob a reader's SQL
    uses, kept for a look (retention removes the folder in time, as any other); None when it is gone already."""
    source = raw_dir / rel
    target = raw_dir / DAMAGED / f"{rel}.damaged"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except FileNotFoundError:
        return None
    fsync(target.parent)
    return target


def purge_days(raw_dir: Path, days: list[str], keep: set[str]) -> int:
    """Delete the day folders `days` (expired_days) that no row points into (`keep`); returns folders deleted."""
    removed = 0
    for day in days:
        if day not in keep:
            shutil.rmtree(raw_dir / day, ignore_errors=True)
            removed += 1
    return removed

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
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.core.files import fsync

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


def purge_days(raw_dir: Path, retention_days: int, keep: set[str]) -> int:
    """Delete day folders whose every file is older than the retention and that no row points into (`keep`);
    returns folders deleted. 0 days keeps everything."""
    if retention_days <= 0 or not raw_dir.exists():
        return 0
    cutoff = time.time() - retention_days * 86400
    removed = 0
    for day in sorted(p for p in raw_dir.iterdir() if p.is_dir() and p.name not in keep):
        if all(f.stat().st_mtime < cutoff for f in day.iterdir()):
            shutil.rmtree(day, ignore_errors=True)
            removed += 1
    return removed

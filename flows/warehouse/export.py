"""Data out of the warehouse for other tools: tables, views or a query written to Parquet or CSV (`newsflow
export`), and the raw HTML kept for one URL (`read_raw_html`, from the archives of flows/warehouse/archive.py).

Reads the published snapshot when asked (or when the live file is busy), so an export never blocks a run.
The output is written by DuckDB's relation API, so no path or value is ever spliced into SQL text (only table
names from the catalog, quoted). Where it may be written is the write guard's decision (flows/core/owned.py).
The connection that runs a user's query may have file access turned off (`database.restrict_files`): the rows
then cross as Arrow batches to a writer of our own (pyarrow's for Parquet, an in-memory DuckDB for CSV).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from flows.core.owned import OutputRefused, Owned, check_output, writing
from flows.core.settings import WarehouseSettings
from flows.warehouse import database, rawcodec

FORMATS = ("parquet", "csv")
# Rows per Arrow batch between the reading and the writing connection, and per Parquet row group. Bounded so that
# one batch's `text` column stays far below Arrow's 2 GiB per string column (DuckDB's default batch of 1M rows
# passed it at ~316k articles, issue 23) and the export's memory stays flat whatever the table's size: 10,000
# articles of a few kB each are tens of MB.
BATCH_ROWS = 10_000


# DuckDB's memory limits on the reading connection of an export (set before the connection is locked). Named base
# tables: a plain scan streams, but without a cap the buffer pool keeps every block the scan read (default limit: 80%
# of RAM): 3.0 GB peak at 1M articles with the batches written by pyarrow, 1.0 GB under 512 MB, 0.78 GB under 256 MB
# (0.66-0.68 GB at 100k). Views (the default export writes them too) join, group and sort: past VIEW_MEMORY they
# spill to the connection's temp directory (file access off does not stop it; database.connect), where uncapped the
# default export peaked at 3.7 GB at 100k articles, most of it `entity_comentions`. A user's query keeps DuckDB's
# limit, as `newsflow sql` does: a 256 MB cap made a query with `limit` run out of memory.
SCAN_MEMORY = "256MB"
VIEW_MEMORY = "1GB"


@dataclass(frozen=True)
class Exported:
    name: str
    path: Path
    rows: int


def relations(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views a user can export (the migration bookkeeping table excluded)."""
    rows = conn.execute(
        "select table_name from information_schema.tables "
        "where table_schema = 'main' and table_name <> 'schema_migrations' order by table_name"
    ).fetchall()
    return [r[0] for r in rows]


def exportable(known: list[str]) -> list[str]:
    """What `newsflow export` writes when no table is named: every table and view but the dedup index's own rows
    (rebuilt from the articles) and the migration bookkeeping."""
    return [t for t in known if t not in ("lsh_buckets", "shingle_samples", "schema_migrations")]


def bound_memory(conn: duckdb.DuckDBPyConnection, tables: list[str] | None, query: str | None) -> str | None:
    """Cap the reading connection's memory: SCAN_MEMORY when the export reads named base tables only, VIEW_MEMORY
    when it reads any view (every table and view when none is named), nothing for a user's query. Call it before
    the connection is locked; returns the cap it set, if any."""
    if query is not None:
        return None
    kinds = dict(conn.execute(
        "select table_name, table_type from information_schema.tables where table_schema = 'main'").fetchall())
    wanted = tables or exportable(list(kinds))
    limit = SCAN_MEMORY if all(kinds.get(t) == "BASE TABLE" for t in wanted) else VIEW_MEMORY
    conn.execute("set memory_limit = $limit", {"limit": limit})
    return limit


def check_name(name: str) -> str:
    """`name` if it is a plain file name (the export stays inside its folder), else ValueError."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a plain file name (no folders, '/' or '..'); choose the folder with --out")
    return name


def file_name(table: str) -> str:
    """A file name for a table's export that stays inside the export folder, whatever the table is called: every
    character but letters, digits, '_' and '-' (and '.' past the first) is written %XX, so '/', '..', a leading
    '.' or an absolute path cannot leave the folder, and two tables never share a file (`%` is escaped too)."""
    out = []
    for i, ch in enumerate(table):
        if ch.isascii() and (ch.isalnum() or ch in "_-" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
    return "".join(out) or "%"


def _write(rel: duckdb.DuckDBPyRelation, tmp: Path, fmt: str, batch_rows: int) -> int:
    """Write `rel` to the temp file `tmp` (the caller renames it over the target once every file is written),
    streamed in batches of `batch_rows` rows; returns the rows written."""
    # to_arrow_reader's default batch is 1M rows; fetch_record_batch is its older (deprecated) name.
    batches = (rel.to_arrow_reader(batch_rows) if hasattr(rel, "to_arrow_reader")
               else rel.fetch_record_batch(batch_rows))
    rows = 0
    if fmt == "parquet":
        # pyarrow's writer, one row group per batch, each batch let go once written. An in-memory DuckDB writing
        # the same batches grew with the table (3.6 GB at 1M articles with the reader capped at 512 MB, 5.3 GB
        # without: issue 23); this one 0.78 GB at 1M (with SCAN_MEMORY). Types and values are the same (a DuckDB read of
        # both exports of every table agrees).
        # zstd level 3 (DuckDB's; pyarrow's 1 wrote 5x the bytes of DuckDB's file) on pages of up to 16 MiB
        # (pyarrow's 1 MiB pages: 20% more bytes on the 100k-article benchmark's prose).
        with pq.ParquetWriter(str(tmp), batches.schema, compression="zstd", compression_level=3,
                              data_page_size=16 << 20) as out:
            for batch in batches:
                out.write_batch(batch, row_group_size=batch_rows)
                rows += batch.num_rows
        return rows

    def pieces() -> Iterator[pa.Table]:
        empty = True
        for batch in batches:
            empty = False
            yield pa.Table.from_batches([batch])
        if empty:  # the header alone
            yield batches.schema.empty_table()

    # CSV: DuckDB's writer, as before, but on one batch at a time, each appended to the file (the header with the
    # first): given the whole stream it grew with the table (3.7 GB half-way through 1M articles).
    # Created exclusively beside `tmp`: never a name that could already be someone's file.
    fd, name = tempfile.mkstemp(dir=tmp.parent, prefix=f".{tmp.name}.", suffix=".batch")
    os.close(fd)
    part = Path(name)
    try:
        with duckdb.connect() as writer, open(tmp, "wb") as whole:
            writer.execute("set threads = 1")
            for i, piece in enumerate(pieces()):
                # use_tmp_file off: `part` is ours, and DuckDB's own (tmp_<name>) outlived a full disk.
                writer.from_arrow(piece).write_csv(str(part), header=i == 0, use_tmp_file=False)
                with open(part, "rb") as written:
                    shutil.copyfileobj(written, whole, 1 << 20)
                rows += piece.num_rows
    finally:
        part.unlink(missing_ok=True)
    return rows


def export(conn: duckdb.DuckDBPyConnection, out: Path, *, tables: list[str] | None = None,
           query: str | None = None, name: str = "query", fmt: str = "parquet",
           progress: Callable[[int, int], None] = lambda _done, _total: None,
           owned: Owned | None = None, batch_rows: int = BATCH_ROWS) -> list[Exported]:
    """Write each table/view to out/<file_name(table)>.<fmt>, or the query to `out` (a file path, or a folder for
    out/<name>.<fmt>); returns what was written. Every target is checked first (flows/core/owned.py: never a
    file the warehouse `owned`, a non-regular file, or an existing file that is not an earlier export of the same
    columns), then all are written to temp files and renamed at the end: a failure leaves nothing, not even the
    folders it made. `progress(done, total)` is called after each file. Rows are streamed `batch_rows` at a time
    (Parquet: one row group each), so memory stays bounded."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    owned = owned or Owned()
    if query is not None:
        rel = conn.sql(query)
        if rel is None:
            raise ValueError("the query returns no rows to export (is it a SELECT?)")
        plan = [(name, rel, out if out.suffix else out / f"{check_name(name)}.{fmt}")]
    else:
        known = relations(conn)
        wanted = tables or exportable(known)
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ValueError(f"no such table or view: {', '.join(unknown)} (have: {', '.join(known)})")
        if out.exists() and not out.is_dir():
            raise OutputRefused(f"{out}: is not a folder; --out names the folder the tables are written to")
        plan = [(table, conn.sql(f"select * from main.{_quoted(table)}"), out / f"{file_name(table)}.{fmt}")
                for table in wanted]
    targets = [check_output(path, owned, fmt, rel.columns) for _, rel, path in plan]  # before any work
    done: list[Exported] = []
    with writing() as files:
        for (label, rel, path), target in zip(plan, targets, strict=True):
            # The rows counted as they are written: a second pass would run a query export's query twice.
            done.append(Exported(label, path, _write(rel, files.temp_for(target), fmt, batch_rows)))
            progress(len(done), len(plan))
    return done


def _quoted(identifier: str) -> str:
    """A table name as a quoted SQL identifier (the one thing spliced: a name from the catalog, its quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def read_raw_html(settings: WarehouseSettings, url: str, *, conn: duckdb.DuckDBPyConnection | None = None
                  ) -> bytes | None:
    """The HTML bytes served for `url` (decompressed), or None when none is kept (off, purged or never
    fetched). Without `conn`, opens a reader (the snapshot while a run holds the live file)."""
    if conn is None:
        with database.reader(settings) as (_path, reader):
            return read_raw_html(settings, url, conn=reader)
    row = conn.execute(database.query("raw_archive_file"), {"url": url}).fetchone()
    if row is not None:
        path = settings.raw_dir / row[0]
        if not path.exists():
            return None
        table = pq.read_table(path, columns=["encoding", "html"], filters=[("url", "=", url)])
        if not table.num_rows:
            return None
        return rawcodec.decode(table["encoding"][0].as_py(), table["html"][0].as_py())
    legacy = conn.execute(database.query("raw_pages_legacy"), {"url": url}).fetchone()
    return rawcodec.decode(*legacy) if legacy else None

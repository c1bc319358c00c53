"""Data out of the warehouse for other tools: tables, views or a query written to Parquet or CSV (`newsflow
export`), and the raw HTML kept for one URL (`read_raw_html`, from the archives of flows/warehouse/archive.py).

Reads the published snapshot when asked (or when the live file is busy), so an export never blocks a run.
The output is written by DuckDB's relation API, so no path or value is ever spliced into SQL text. The
connection that runs a user's query may have file access turned off (`database.restrict_files`): the rows
then cross as Arrow batches to an in-memory connection of our own, which writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from flows.core.settings import WarehouseSettings
from flows.warehouse import database, rawcodec

FORMATS = ("parquet", "csv")


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


def check_name(name: str) -> str:
    """`name` if it is a plain file name (the export stays inside its folder), else ValueError."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a plain file name (no folders, '/' or '..'); choose the folder with --out")
    return name


def _write(rel: duckdb.DuckDBPyRelation, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    batches = rel.to_arrow_reader() if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch()
    try:
        with duckdb.connect() as writer:
            out = writer.from_arrow(batches)
            if fmt == "parquet":
                out.write_parquet(str(tmp), compression="zstd")
            else:
                out.write_csv(str(tmp), header=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)  # a reader never sees a half-written export


def export(conn: duckdb.DuckDBPyConnection, out: Path, *, tables: list[str] | None = None,
           query: str | None = None, name: str = "query", fmt: str = "parquet",
           progress: Callable[[int, int], None] = lambda _done, _total: None) -> list[Exported]:
    """Write each table/view to out/<name>.<fmt>, or the query to `out` (a file path); returns what was written.

    `progress(done, total)` is called after each file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    done: list[Exported] = []
    if query is not None:
        rel = conn.sql(query)
        if rel is None:
            raise ValueError("the query returns no rows to export (is it a SELECT?)")
        path = out if out.suffix else out / f"{check_name(name)}.{fmt}"
        _write(rel, path, fmt)
        done.append(Exported(name, path, _count(conn, rel)))
        progress(1, 1)
        return done
    known = relations(conn)
    wanted = tables or [t for t in known if t not in ("lsh_buckets", "shingle_samples")]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"no such table or view: {', '.join(unknown)} (have: {', '.join(known)})")
    for table in wanted:
        rel = conn.table(table)
        path = out / f"{table}.{fmt}"
        _write(rel, path, fmt)
        done.append(Exported(table, path, _count(conn, rel)))
        progress(len(done), len(wanted))
    return done


def _count(conn: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation) -> int:
    return rel.aggregate("count(*)").fetchall()[0][0]


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

"""The DuckLake backend: a warehouse whose tables are Parquet files under `data_path`, listed by a catalog
database (a local DuckDB or SQLite file, or PostgreSQL), so several machines read and write it at once.

The default backend, one DuckDB file, lives in flows/warehouse/database.py; this module only opens a lake and adapts
what DuckLake lacks: extensions come from their PyPI wheels and are loaded by path (DuckDB never downloads one),
and migrations lose the constraints DuckLake refuses (flows/warehouse/writer.py enforces those keys; docs/scale.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sqlite3
from pathlib import Path
from typing import Any

import duckdb

from flows.core.errors import WarehouseError, WarehouseMissing
from flows.core.settings import WarehouseSettings
from flows.core.urls import scrub, secrets_in

LAKE = "lake"  # the name the lake is attached under, and made the default catalog
_EXTENSION_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
# A commit that lost to another writer's (DuckLake checks at commit: "Transaction conflict - ..."), or a SQLite
# catalog busy with another connection's transaction.
_CONFLICT_MARKERS = ("Transaction conflict", "database is locked", "could not serialize")
# A read-only ATTACH of a catalog with no lake in it yet (a PostgreSQL database no load has initialised).
_NO_LAKE_MARKER = "creating a new DuckLake is explicitly disabled"


def extension_file(name: str) -> Path:
    """The `.duckdb_extension` file of `name` shipped in the duckdb-extension-<name> wheel for this DuckDB."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    version = duckdb.__version__
    if spec is None or not spec.submodule_search_locations:
        raise WarehouseError(f"the DuckDB extension {name!r} is not installed (pip install "
                             f"duckdb-extension-{name.replace('_', '-')}=={version}); it is never downloaded "
                             "at run time")
    path = Path(spec.submodule_search_locations[0]) / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise WarehouseError(f"{path}: no {name} extension for DuckDB {version} (the extension wheel and duckdb "
                             "must have the same version)")
    return path


def catalog_kind(catalog: str) -> str:
    """duckdb | sqlite | postgres: the database that holds the lake's catalog (a `postgres://` or
    `postgresql://` URI is PostgreSQL, never a local file of that name)."""
    if catalog.startswith(("postgres:", "postgresql:")):
        return "postgres"
    return "sqlite" if catalog.startswith("sqlite:") else "duckdb"


def attach_target(catalog: str) -> str:
    """What DuckLake's ATTACH takes after `ducklake:`: `postgres:<libpq connection string or URI>` for any
    spelling of a PostgreSQL catalog (DuckLake reads `postgres://u@h/db` as a local file `postgres:/u@h/db`, and
    `postgresql:` as an extension named postgresql), the catalog as given otherwise."""
    if catalog_kind(catalog) != "postgres":
        return catalog
    if catalog.startswith(("postgres://", "postgresql://")):
        return "postgres:" + catalog
    return "postgres:" + catalog.removeprefix("postgresql:").removeprefix("postgres:")


def catalog_file(settings: WarehouseSettings) -> Path | None:
    """The local catalog file (DuckDB or SQLite), None for a PostgreSQL catalog."""
    kind = catalog_kind(settings.catalog)
    if kind == "postgres":
        return None
    return Path(settings.catalog.removeprefix("sqlite:"))


def exists(settings: WarehouseSettings) -> bool:
    """Whether the lake is there to read: its local catalog file exists (a PostgreSQL catalog is assumed)."""
    path = catalog_file(settings)
    return path is None or path.exists()


def _literal(text: str) -> str:
    # ATTACH takes no prepared parameters, so the two strings it needs are quoted here.
    return "'" + text.replace("'", "''") + "'"


def connect(settings: WarehouseSettings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and in use; extensions loaded from their wheels.

    DuckDB's own errors pass through, so the caller can tell a held catalog (retried) from a broken one.
    """
    kind = catalog_kind(settings.catalog)
    local = catalog_file(settings)
    if local is not None:
        if read_only and not local.exists():
            raise WarehouseMissing(f"{local}: no lake catalog yet (run `newsflow ingest` or `newsflow demo` first)")
        if not read_only:  # a reader creates nothing, not even a folder
            local.parent.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite" and not local.exists():
            # In SQLite's default journal mode an idle reader's connection makes every commit fail with
            # "database is locked"; in WAL mode (kept by the file) readers and the writer do not block each other.
            with contextlib.closing(sqlite3.connect(local)) as db:
                db.execute("pragma journal_mode = wal")
    data_path = settings.lake_data_path
    if "://" not in data_path and not read_only:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    # No progress bar: it writes to stdout, into `newsflow sql`'s results (flows/warehouse/database.py).
    conn = duckdb.connect(":memory:", config=dict(_EXTENSION_CONFIG))
    conn.execute("set enable_progress_bar = false")
    try:
        conn.execute(f"load {_literal(str(extension_file('ducklake')))}")
        if kind != "duckdb":
            conn.execute(f"load {_literal(str(extension_file(kind + '_scanner')))}")
        options = f"data_path {_literal(data_path)}" + (", read_only" if read_only else "")
        conn.execute(f"attach {_literal('ducklake:' + attach_target(settings.catalog))} as {LAKE} ({options})")
        conn.execute(f"use {LAKE}")
    except duckdb.Error as exc:
        conn.close()
        if read_only and _NO_LAKE_MARKER in str(exc):
            raise WarehouseMissing(f"{display_name(settings.catalog)}: no lake yet (the first load creates it: "
                                   "`newsflow ingest`, `newsflow load` or `newsflow demo`)") from None
        masked = scrub(str(exc), secrets_in(settings.catalog))
        if masked != str(exc):  # DuckDB quotes the connection string: the same error, its password masked
            raise type(exc)(masked) from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def display_name(catalog: str) -> str:
    """The catalog as named in messages (or a message naming it): every password masked (flows/core/urls.py
    scrub, the one masking function of messages and logs)."""
    return scrub(catalog)


# A local DuckDB catalog file attached by another connection of this process (a run's writer thread while its
# pre-check connects): DuckDB opens a database file once per process, so the second attach waits like for a lock.
SAME_PROCESS_MARKER = "Unique file handle conflict"


def is_conflict(exc: BaseException) -> bool:
    """A commit that lost to another writer's (DuckLake checks conflicts at commit), or a catalog file this
    process has attached elsewhere right now; retried like a lock."""
    if isinstance(exc, duckdb.BinderException) and SAME_PROCESS_MARKER in str(exc):
        return True
    return isinstance(exc, duckdb.TransactionException | duckdb.IOException) and any(
        m in str(exc) for m in _CONFLICT_MARKERS)


# Constraints DuckLake refuses ("PRIMARY KEY/UNIQUE constraints are not supported", "does not support indexes").
_TABLE_KEY = re.compile(r",\s*(?:primary\s+key|unique)\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"\s+(?:primary\s+key|unique)\b(?!\s*\()", re.IGNORECASE)
_INDEX = re.compile(r"\bcreate\s+(?:unique\s+)?index\b[^;]*;", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")
# A column's storage hint for DuckDB's own files; a lake's Parquet files are written by DuckLake's own choice.
_COMPRESSION = re.compile(r"\s+using\s+compression\s+'[a-z_]+'", re.IGNORECASE)


def lake_sql(sql: str) -> str:
    """A migration as DuckLake takes it: comments, primary keys, unique constraints, indexes and compression
    hints removed.

    The keys stay enforced by the loader (flows/warehouse/writer.py KEYS); tests compare those with the file's
    constraints.
    """
    sql = _COMMENT.sub("", sql)
    sql = _INDEX.sub("", sql)
    sql = _COMPRESSION.sub("", sql)
    sql = _TABLE_KEY.sub("", sql)
    return _COLUMN_KEY.sub("", sql)


def data_folder(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The data path of the lake the connection uses (as stored in its catalog), None for a DuckDB file."""
    if not is_lake(conn):
        return None
    rows = conn.execute(f"select option_name, value from ducklake_options({_literal(LAKE)})").fetchall()
    return dict(rows).get("data_path")


def is_lake(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's current database is a DuckLake."""
    row = conn.execute("select type from duckdb_databases() where database_name = current_database()").fetchone()
    return bool(row) and row[0] == "ducklake"


def upkeep(conn: duckdb.DuckDBPyConnection, older_than: Any, *, dry_run: bool = False) -> dict[str, int]:
    """The lake's maintenance on a read-write connection: merge small adjacent data files, expire the snapshots
    taken before `older_than` (a timestamp; time travel reaches no further back), and delete the files no snapshot
    references any more once they have been unreferenced since before `older_than`. Returns counts of each.
    A merge keeps every snapshot's view of the data (DuckLake's merges are transparent to time travel)."""
    name = _literal(LAKE)
    out = {"files_merged": 0, "snapshots_expired": 0, "files_deleted": 0}
    if not dry_run:
        merged = conn.execute(f"call ducklake_merge_adjacent_files({name})").fetchall()
        out["files_merged"] = sum(int(r[2]) for r in merged)  # (schema, table, files processed, files created)
    dry = "true" if dry_run else "false"
    out["snapshots_expired"] = len(conn.execute(
        f"call ducklake_expire_snapshots({name}, older_than => $t, dry_run => {dry})", {"t": older_than}).fetchall())
    out["files_deleted"] = len(conn.execute(
        f"call ducklake_cleanup_old_files({name}, older_than => $t, dry_run => {dry})", {"t": older_than}).fetchall())
    return out

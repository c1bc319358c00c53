"""The DuckDB warehouse: connections, lock handling, migrations, views and named SQL queries.

One writer: only the load step opens the file for writing, briefly, one transaction per batch. DuckDB lets a
single process hold the file, so while anyone else has it open (even read-only) a write waits with backoff
and, past `lock_wait_seconds`, the batch stays staged for the next run (see flows/staging.py).
"""

from __future__ import annotations

import os
import random
import shutil
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from flows.settings import PROJECT_ROOT, WarehouseSettings

SQL_DIR = PROJECT_ROOT / "warehouse"
MIGRATIONS_DIR = SQL_DIR / "migrations"
VIEWS_DIR = SQL_DIR / "views"
QUERIES_DIR = SQL_DIR / "queries"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


class WarehouseError(Exception):
    """The warehouse cannot be used (not a DuckDB file, newer schema than this code, ...)."""


class WarehouseLocked(WarehouseError):
    """Another process held the warehouse for longer than the configured wait."""


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and any(m in str(exc) for m in _LOCK_MARKERS)


@cache
def query(name: str) -> str:
    """The text of warehouse/queries/<name>.sql."""
    return (QUERIES_DIR / f"{name}.sql").read_text()


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration, in order; gaps and bad names are errors."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise WarehouseError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append((int(m.group(1)), path.name, path.read_text()))
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise WarehouseError(f"migration {name}: expected version {expected:04d}")
    return found


def _connect(path: Path, settings: WarehouseSettings, read_only: bool) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {}
    if not read_only and not path.exists():
        config["storage_compatibility_version"] = settings.storage_compatibility
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only, config=config)


@contextmanager
def connect(settings: WarehouseSettings, *, read_only: bool = False, wait: float | None = None,
            path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse, retried with jittered backoff while another process holds the lock."""
    path = path or settings.path
    if read_only and not path.exists():
        raise WarehouseError(f"{path}: no warehouse yet (run `newsflow ingest` or `newsflow demo` first)")
    wait = settings.lock_wait_seconds if wait is None else wait
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            conn = _connect(path, settings, read_only)
            break
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise WarehouseError(f"{path}: {exc}") from None
            if time.monotonic() + delay > deadline:
                raise WarehouseLocked(
                    f"{path} is locked by another process (waited {wait:g} s); "
                    "close other connections or query the snapshot (`newsflow sql`)"
                ) from None
            time.sleep(delay * (0.5 + random.random()))  # backoff on a lock held by another process
            delay = min(delay * 2, 2.0)
        except duckdb.Error as exc:
            raise WarehouseError(f"{path}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return conn.execute("select coalesce(max(version), 0) from schema_migrations").fetchone()[0]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations, each with its record in one transaction, then re-create the views."""
    conn.execute(
        "create table if not exists schema_migrations "
        "(version integer primary key, name varchar not null, applied_at timestamptz not null)"
    )
    known = migrations()
    current = schema_version(conn)
    if current > len(known):
        raise WarehouseError(
            f"warehouse schema is version {current}, newer than this newsflow ({len(known)}); upgrade newsflow"
        )
    applied = []
    for version, name, sql in known[current:]:
        conn.execute("begin transaction")
        try:
            conn.execute(sql)
            conn.execute("insert into schema_migrations values (?, ?, now())", [version, name])
            conn.execute("commit")
        except Exception:
            conn.execute("rollback")
            raise
        applied.append(name)
    create_views(conn)
    return applied


def view_files() -> list[Path]:
    return sorted(VIEWS_DIR.glob("*.sql"))


def create_views(conn: duckdb.DuckDBPyConnection) -> None:
    """(Re-)create every view in warehouse/views/, each file named after its view.

    Views may read each other, so failures are retried until no more progress is made.
    """
    pending = view_files()
    while pending:
        failed = []
        for path in pending:
            try:
                conn.execute(f"create or replace view {path.stem} as\n{path.read_text()}")
            except duckdb.CatalogException:
                failed.append(path)
        if len(failed) == len(pending):
            conn.execute(f"create or replace view {failed[0].stem} as\n{failed[0].read_text()}")
        pending = failed


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("begin transaction")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def ensure_ready(settings: WarehouseSettings) -> None:
    """Create or migrate the warehouse file."""
    with connect(settings) as conn:
        migrate(conn)


def publish_snapshot(settings: WarehouseSettings) -> Path | None:
    """Copy the warehouse to the snapshot path atomically, for readers who keep a session open.

    Readers of the snapshot never hold a lock on the live file, so they cannot block a load; each run replaces
    the snapshot whole (os.replace), so an open reader keeps the old file until it reconnects.
    """
    if not settings.snapshot or not settings.path.exists():
        return None
    with connect(settings) as conn:
        conn.execute("checkpoint")
        target = settings.snapshot_path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(settings.path, tmp)
    os.replace(tmp, target)
    return target

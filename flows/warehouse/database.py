"""The DuckDB warehouse: connections, lock handling, migrations, views and named SQL queries.

With `[warehouse] backend = "ducklake"` the same functions open a DuckLake instead (flows/warehouse/lake.py): there is
no file lock, no snapshot copy, and readers on other machines query the lake while loads run.

Each step that changes the file opens it read-write briefly (docs/architecture.md lists them): the start of a
run, the load (flows/warehouse/writer.py, the only step that writes articles, one transaction per batch), the
checks, the snapshot, `reprocess` and the maintenance flow. DuckDB lets a single process hold the file, so while
anyone else has it open (even read-only) a write waits with backoff and, past `lock_wait_seconds`, a batch stays
staged for the next run (see flows/warehouse/staging.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

# QueryError is re-exported: the commands catch database.QueryError.
from flows.core.errors import QueryError, WarehouseError, WarehouseLocked, WarehouseMissing, describe  # noqa: F401
from flows.core.settings import PROJECT_ROOT, WarehouseSettings
from flows.warehouse import archive, identity, lake

log = logging.getLogger("newsflow.database")

SQL_DIR = PROJECT_ROOT / "warehouse"
MIGRATIONS_DIR = SQL_DIR / "migrations"
VIEWS_DIR = SQL_DIR / "views"
QUERIES_DIR = SQL_DIR / "queries"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")
# DuckDB's Python client shares one database instance per file among a process's connections; a connect racing
# the close of the last one can get an instance without its Python scans (`python_arrow_scan does not exist` on
# register). The ingest's writer thread and the NER pre-check meet exactly there, so both go through this lock.
_OPEN_CLOSE = threading.Lock()


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (DuckDB adds the query and a caret below it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    with _OPEN_CLOSE:
        conn = duckdb.connect(str(path), read_only=read_only, config=config)
    # DuckDB's progress bar (on by default past 2 s) writes to stdout whatever it is: it landed inside the results
    # of `newsflow sql --format csv|json` and in the logs. (A setting, not `config`: another connection to the same
    # file in this process must be opened with the same config.)
    conn.execute("set enable_progress_bar = false")
    return conn


@contextmanager
def connect(settings: WarehouseSettings, *, read_only: bool = False, wait: float | None = None,
            path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse, retried with jittered backoff while another process holds the lock."""
    is_lake = settings.is_lake and path in (None, settings.path)
    path = path or settings.path
    # Named in errors: the file, or the catalog as given (a Path would fold a URI's '//'), its password masked.
    name = lake.display_name(settings.catalog) if is_lake else str(path)
    if not is_lake and read_only and not path.exists():
        raise WarehouseMissing(f"{path}: no warehouse yet (run `newsflow ingest` or `newsflow demo` first)")
    wait = settings.lock_wait_seconds if wait is None else wait
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            conn = lake.connect(settings, read_only=read_only) if is_lake else _connect(path, settings, read_only)
            break
        except duckdb.Error as exc:
            # A DuckDB catalog file is held like a warehouse file (one process at a time).
            if not (is_lock_error(exc) or (is_lake and lake.is_conflict(exc))):
                raise WarehouseError(f"{name}: {lake.display_name(first_line(exc)) if is_lake else exc}") from None
            if time.monotonic() + delay > deadline:
                raise WarehouseLocked(
                    f"{name} is locked by another process (waited {wait:g} s); "
                    "close other connections or query the snapshot (`newsflow sql`)"
                ) from None
            time.sleep(delay * (0.5 + random.random()))  # backoff on a lock held by another process
            delay = min(delay * 2, 2.0)
    spill = None
    try:
        spill = _private_spill(conn, path, is_lake)
        yield conn
    finally:
        with _OPEN_CLOSE:
            conn.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


def _private_spill(conn: duckdb.DuckDBPyConnection, path: Path, is_lake: bool) -> str | None:
    """Give the connection a temp folder of its own where DuckDB's would not do; the folder, to remove at close.

    DuckDB spills joins, sorts and groupings past `memory_limit` to `<file>.tmp` beside a database file, and to
    `.tmp` in the working directory for a lake (its connection is an in-memory database). A reader who may read
    the warehouse but not write its folder (a read-only account for analysts) then failed any query that spilled,
    a default export's views among them; a lake's spill landed wherever the command was started. A file whose
    folder can be written keeps DuckDB's choice: the warehouse's own disk."""
    if not is_lake and os.access(path.parent, os.W_OK):
        return None
    folder = tempfile.mkdtemp(prefix="newsflow-spill-")
    conn.execute("set temp_directory = $folder", {"folder": folder})
    return folder


def exists(settings: WarehouseSettings) -> bool:
    """Whether there is a warehouse to read: the file, or the lake's catalog."""
    return lake.exists(settings) if settings.is_lake else settings.path.exists()


@contextmanager
def reader(settings: WarehouseSettings, *, snapshot: bool = False, wait: float | None = None
           ) -> Iterator[tuple[Path, duckdb.DuckDBPyConnection]]:
    """A read-only connection for people and exports, with the file it reads: the snapshot when asked, else the
    live file, falling back to the snapshot while a run holds the live file for longer than `wait`.
    A lake is always read live: its readers never wait for a load and see the last committed snapshot.
    `wait`: a person's read (`waits.read`) unless given."""
    wait = settings.waits.read if wait is None else wait
    if settings.is_lake:
        with connect(settings, read_only=True, wait=wait) as conn:
            yield settings.path, conn
        return
    if snapshot:
        if not settings.snapshot_path.exists():
            raise WarehouseError(f"{settings.snapshot_path}: no snapshot yet (the next run that loads publishes "
                                 "it, or `newsflow snapshot` now; `[warehouse] snapshot = true`)")
        with _snapshot(settings, wait) as conn:
            yield settings.snapshot_path, conn
        return
    try:
        cm = connect(settings, read_only=True, wait=wait)
        conn = cm.__enter__()
    except WarehouseLocked:
        if not settings.snapshot_path.exists():
            raise WarehouseLocked(f"{settings.path} is busy (a run is loading it) and there is no snapshot yet; "
                                  "try again in a moment") from None
        with _snapshot(settings, wait) as conn:
            yield settings.snapshot_path, conn
        return
    try:
        yield settings.path, conn
    finally:
        cm.__exit__(None, None, None)


@contextmanager
def _snapshot(settings: WarehouseSettings, wait: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the snapshot; a damaged one is refused with the way to publish it again (the
    warehouse's own remedy, a backup, would be the wrong advice for a copy)."""
    remedy = "`newsflow snapshot` copies the warehouse to it again"
    if problem := identity.damaged_copy(settings.snapshot_path):
        raise WarehouseError(f"{settings.snapshot_path}: the snapshot is damaged ({problem}); {remedy}")
    try:
        cm = connect(settings, read_only=True, wait=wait, path=settings.snapshot_path)
        conn = cm.__enter__()
    except (WarehouseLocked, WarehouseMissing):
        raise
    except WarehouseError as exc:  # a catalog that does not read: the warehouse's own advice does not apply here
        why = first_line(exc).removeprefix(f"{settings.snapshot_path}: ").split("; ")[0]
        raise WarehouseError(f"{settings.snapshot_path}: the snapshot is damaged ({why}); {remedy}") from exc
    try:
        yield conn
    finally:
        cm.__exit__(None, None, None)


def check_file(path: Path, *, create: bool = False, write: bool = False) -> None:
    """Refuse (WarehouseError) anything but a newsflow warehouse, as flows/warehouse/identity.py judges it (read-only,
    nothing is written). With `create`, a missing file or an empty database passes too (the caller creates and
    migrates it); with `write`, a warehouse of a newer schema than this newsflow's is refused. A file another
    process holds open cannot be looked into and passes: its holder is a run, and `migrate` still judges it."""
    try:
        verdict = identity.classify(path)
    except identity.BusyError:
        return
    _judge(verdict, str(path), create=create, write=write, missing=f"{path}: no warehouse yet (run `newsflow "
                                                                   "ingest` or `newsflow demo` first)")


def _judge(verdict: identity.Verdict, name: str, *, create: bool, write: bool, missing: str) -> None:
    if verdict.kind == "foreign" and verdict.reason.startswith("truncated"):
        # Most likely our own warehouse, cut short by a copy or a full disk: say how to get it back.
        raise WarehouseError(f"{name}: the file is truncated ({verdict.reason.removeprefix('truncated: ')}): not a "
                             "usable warehouse; restore it from a backup or the snapshot")
    if verdict.kind == "foreign":
        raise WarehouseError(f"{name}: not a newsflow warehouse ({verdict.reason}); newsflow leaves it alone")
    if verdict.kind == "missing" and not create:
        raise WarehouseMissing(missing)
    if verdict.kind == "empty" and not create:
        raise WarehouseError(f"{name}: an empty database, not a newsflow warehouse yet (no schema_migrations table)")
    if write and verdict.kind == "newsflow" and verdict.version > len(migrations()):
        raise WarehouseError(f"{name}: warehouse schema is version {verdict.version}, newer than this newsflow "
                             f"({len(migrations())}); upgrade newsflow")


def check_lake(settings: WarehouseSettings, *, create: bool = False, write: bool = False) -> None:
    """check_file for a DuckLake: its local catalog file must be missing, empty or a DuckLake catalog (never
    another database, which a lake would write 50 tables into), and the lake in it a newsflow warehouse."""
    name = lake.display_name(settings.catalog)
    missing = f"{name}: no lake yet (run `newsflow ingest` or `newsflow demo` first)"
    local = lake.catalog_file(settings)
    if local is not None:
        try:
            verdict = identity.classify_catalog(local, lake.catalog_kind(settings.catalog))
        except identity.BusyError:
            return
        if verdict.kind != "newsflow":
            if verdict.kind == "foreign":
                raise WarehouseError(f"{name}: not a DuckLake catalog newsflow can use ({verdict.reason}); "
                                     "newsflow never writes into it")
            _judge(verdict, name, create=create, write=write, missing=missing)
            return
    try:
        with connect(settings, read_only=True, wait=settings.waits.read) as conn:
            verdict = identity.classify_conn(conn)
    except WarehouseMissing:  # a PostgreSQL catalog no load has initialised yet
        verdict = identity.Verdict("missing")
    _judge(verdict, name, create=create, write=write, missing=missing)


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return conn.execute("select coalesce(max(version), 0) from schema_migrations").fetchone()[0]


def migrate(conn: duckdb.DuckDBPyConnection, known: list[tuple[int, str, str]] | None = None) -> list[str]:
    """Apply pending migrations (forward only), each with its record in one transaction, then re-create the
    views. `known` defaults to warehouse/migrations/; tests pass a prefix of it to build earlier versions.
    A DuckDB file with tables but no migration record is someone else's data: it is refused, never migrated."""
    verdict = identity.classify_conn(conn)
    if verdict.kind == "foreign":
        raise WarehouseError(f"{_db_file(conn)}: not a newsflow warehouse ({verdict.reason}); newsflow leaves it "
                             "alone")
    # A lake takes each migration without the constraints DuckLake refuses; the loader enforces those keys.
    adapt = lake.lake_sql if lake.is_lake(conn) else str
    conn.execute(adapt(
        "create table if not exists schema_migrations "
        "(version integer primary key, name varchar not null, applied_at timestamptz not null)"
    ))
    known = migrations() if known is None else known
    current = schema_version(conn)
    if current > len(known):
        raise WarehouseError(
            f"warehouse schema is version {current}, newer than this newsflow ({len(known)}); upgrade newsflow"
        )
    applied = []
    for version, name, sql in known[current:]:
        conn.execute("begin transaction")
        try:
            conn.execute(adapt(sql))
            conn.execute("insert into schema_migrations values (?, ?, now())", [version, name])
            conn.execute("commit")
        except Exception:
            conn.execute("rollback")
            raise
        applied.append(name)
    if len(known) == len(migrations()) and (applied or _views_stale(conn, lake=lake.is_lake(conn))):
        # Views read the latest schema. Re-created only when one is missing or its file changed: a loader opens
        # the warehouse once per batch, and re-creating ten views each time was a tenth of a batch's load. On a
        # lake each re-creation is also a catalog commit (a snapshot that can meet another writer's).
        create_views(conn)
    return applied


_SAFE_MARK = re.compile(r"newsflow view from warehouse/views/[a-z0-9_]+\.sql \(sha256 [0-9a-f]{16}\)")


def _view_mark(path: Path) -> str:
    """The comment a view carries: where it comes from, and a hash of that file's text."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"newsflow view from warehouse/views/{path.name} (sha256 {digest})"


def _views_stale(conn: duckdb.DuckDBPyConnection, *, lake: bool) -> bool:
    """Whether a view is missing, or (on a DuckDB file) was made from another text than its file's today."""
    have = dict(conn.execute(
        "select view_name, comment from duckdb_views() where database_name = current_database() and not internal"
    ).fetchall())
    files = view_files()
    if lake:
        return not {p.stem for p in files} <= have.keys()
    return any(have.get(p.stem, "") != _view_mark(p) for p in files)


def _db_file(conn: duckdb.DuckDBPyConnection) -> str:
    row = conn.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()
    return row[0] if row and row[0] else "the database"


def restrict_files(conn: duckdb.DuckDBPyConnection, folders: list[Path]) -> None:
    """Lock down a connection that runs a user's query (after flows/warehouse/queryguard.py let it through): file
    access off except under `folders` (the raw archives; DuckDB cannot make a folder read-only, which is why
    the guard refuses every statement and function that writes), no extension loaded or installed on demand,
    and the configuration locked so no statement turns any of it back on. Lasts until the database is closed.
    A lake's data folder stays readable."""
    dirs = [f"{f.resolve()}/" for f in folders]
    lake_data = lake.data_folder(conn)
    if lake_data and "://" not in lake_data:
        dirs.append(f"{Path(lake_data).resolve()}/")
    conn.execute("set allowed_directories = $dirs", {"dirs": dirs})
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        conn.execute(f"set {setting} = false")
    conn.execute("set lock_configuration = true")


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
    if not lake.is_lake(conn):
        # The mark tells the next connection this view is current (DuckDB keeps comments with the view; a lake's
        # catalog does not need them: it re-creates views only when one is missing).
        for path in view_files():
            # COMMENT ON takes no parameters; the mark is our file name and a hex digest, checked to hold no quote.
            mark = _view_mark(path)
            if not _SAFE_MARK.fullmatch(mark):
                raise WarehouseError(f"view file name {path.name!r}: use lower-case letters, digits and _")
            conn.execute(f"comment on view {path.stem} is '{mark}'")


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("begin transaction")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def ensure_ready(settings: WarehouseSettings) -> bool:
    """Create or migrate the warehouse file and purge raw HTML past its retention; False when it is locked.

    A locked warehouse is not an error for a run: its batches are staged and the next run loads them.
    """
    try:
        with connect(settings) as conn:
            prepare(conn, settings)
    except WarehouseLocked:
        return False
    return True


def prepare(conn: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> None:
    """What a run does first on an open connection: migrate, then purge raw HTML past its retention."""
    migrate(conn)
    try:
        purge_raw_html(conn, settings.raw_html_retention_days, raw_dir=settings.raw_dir)
    except OSError as exc:
        # The raw archive is a copy kept for re-extraction: a folder that cannot be listed (a file in its place, a
        # permission) must not stop every run. Its pointers past the retention are gone already; the maintenance
        # flow's `raw` step fails on it too, so it is reported nightly until mended.
        log.error("raw-HTML retention skipped: %s; move away what stands at %s, and the next run keeps raw HTML "
                  "there again; the run goes on", describe(exc), settings.raw_dir)


def purge_raw_html(conn: duckdb.DuckDBPyConnection, retention_days: int, *, raw_dir: Path | None = None) -> int:
    """Delete raw HTML fetched more than `retention_days` ago (0 keeps it forever): the `raw_archive` pointers
    and legacy `raw_pages` rows, then, under `raw_dir`, the day folders of archives that are all that old and
    no pointer still uses. Returns rows deleted."""
    if retention_days <= 0:
        return 0
    deleted = 0
    for name in ("purge_raw_archive", "purge_raw_pages"):
        deleted += conn.execute(query(name), {"days": retention_days}).fetchone()[0]
    if raw_dir is not None:
        # Which rows point into the folders that expired (one a day at most, usually none): not the day of every
        # pointer, a scan of all 270k at 90 days of a year's pages (60-110 ms of every run's start at 1M).
        expired = archive.expired_days(raw_dir, retention_days)
        if expired:
            keep = {r[0] for r in conn.execute(query("raw_archive_days"), {"days": expired}).fetchall()}
            archive.purge_days(raw_dir, expired, keep)
    return deleted

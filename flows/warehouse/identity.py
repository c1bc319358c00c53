"""The one place that decides whether a file is a newsflow warehouse, before anything writes to it or deletes it.

A warehouse file (or a lake) is one of:
- `missing`: nothing there yet; a writer may create it.
- `empty`: a database holding no user object at all, in any schema: no table, view, macro, sequence, type or
  schema of its own (DuckDB's own `main` and catalogs do not count); a writer may migrate it.
- `newsflow`: `main.schema_migrations` with our columns, its rows named like warehouse/migrations/ files.
- `foreign`: anything else: somebody's tables in another schema, a macro, a SQLite file, a truncated file.
  Never migrated, written or deleted.

A DuckLake's catalog file (a DuckDB or SQLite file) is judged first on its own (`classify_catalog`): it must be
missing, empty, or hold DuckLake's `ducklake_*` tables only; the lake inside is then judged like a file.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

Kind = Literal["missing", "empty", "newsflow", "foreign"]
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
# Every kind of object a user can leave in a DuckDB database, with the query listing them (`?`: the database),
# cheapest first: a file's verdict needs only the first kind found.
_OBJECTS = (
    ("table", "select schema_name || '.' || table_name from duckdb_tables() where database_name = ?"),
    ("type", "select schema_name || '.' || type_name from duckdb_types() where database_name = ? and not internal"),
    ("sequence", "select schema_name || '.' || sequence_name from duckdb_sequences() where database_name = ?"),
    ("schema", "select schema_name from duckdb_schemas() where database_name = ? and not internal "
               "and schema_name <> 'main'"),
    ("view", "select schema_name || '.' || view_name from duckdb_views() where database_name = ? and not internal"),
    ("macro", "select distinct schema_name || '.' || function_name from duckdb_functions() "
              "where database_name = ? and not internal"),
)
# Another process holds the file, or another connection of this one (a lake's catalog attached by a run).
_HELD_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked", "Unique file handle conflict")
_MIGRATIONS_COLUMNS = ["version", "name", "applied_at"]
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DUCKDB_HEADER = 4096  # DuckDB files start with a main header and two database headers of this size


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str = ""  # for `foreign`: what was found, for the one-line refusal
    version: int = 0  # for `newsflow`: the schema version it has

    def __str__(self) -> str:
        return self.kind if not self.reason else f"{self.kind} ({self.reason})"


def user_objects(conn: duckdb.DuckDBPyConnection, *, first_kind: bool = False) -> list[str]:
    """Every user object of the connection's current database, as `kind schema.name`, in every schema; with
    `first_kind`, only those of the first kind that has any (enough to tell empty from not)."""
    db = conn.execute("select current_database()").fetchall()[0][0]
    found: list[str] = []
    for kind, sql in _OBJECTS:
        found += [f"{kind} {row[0]}" for row in conn.execute(sql, [db]).fetchall()]
        if found and first_kind:
            break
    return found


def classify_conn(conn: duckdb.DuckDBPyConnection) -> Verdict:
    """What the connection's current database is (a DuckDB file or a lake): empty, newsflow or foreign. A newsflow
    warehouse is told by its migrations table alone (a loader asks at every connection; the other objects a
    user may have added to it do not change the verdict); anything else is looked at object by object."""
    # duckdb_tables() and a `limit 0`: a millisecond, where duckdb_columns() took 10-100 ms.
    if not conn.execute("select 1 from duckdb_tables() where database_name = current_database() "
                        "and schema_name = 'main' and table_name = 'schema_migrations'").fetchall():
        objects = user_objects(conn, first_kind=True)
        return Verdict("foreign", _describe(objects)) if objects else Verdict("empty")
    columns = [d[0] for d in conn.execute("select * from main.schema_migrations limit 0").description]
    if columns != _MIGRATIONS_COLUMNS:
        return Verdict("foreign", f"its schema_migrations has columns {', '.join(columns)}, not newsflow's")
    rows = conn.execute("select version, name from main.schema_migrations order by version").fetchall()
    if any(not MIGRATION_NAME.match(str(name)) for _, name in rows) or (rows and rows[0] != (1, "0001_init.sql")):
        return Verdict("foreign", "its schema_migrations does not list newsflow's migrations")
    return Verdict("newsflow", version=max((v for v, _ in rows), default=0))


def _describe(objects: list[str]) -> str:
    more = f" and {len(objects) - 1} more object{'s' * (len(objects) > 2)}" if len(objects) > 1 else ""
    return f"it holds {objects[0]}{more}"


def _shortfall(path: Path) -> tuple[int, int, int, int, int] | None:
    """(size, block size, blocks present, blocks the header counts, its free-list pointer) of a DuckDB file shorter
    than its active database header says (the one with the higher iteration), else None. A header not understood is
    not judged."""
    try:
        with path.open("rb") as f:
            head = f.read(3 * _DUCKDB_HEADER)
        size = path.stat().st_size
    except OSError:
        return None
    if len(head) < 3 * _DUCKDB_HEADER or head[8:12] != b"DUCK":
        return None
    # Each database header: checksum, iteration, meta block, free list, block count, block size (little endian).
    headers = [struct.unpack_from("<6Q", head, off) for off in (_DUCKDB_HEADER, 2 * _DUCKDB_HEADER)]
    _, _, _, free_list, blocks, block_size = max(headers, key=lambda h: h[1])
    if not (4096 <= block_size <= 1 << 30 and block_size & (block_size - 1) == 0 and blocks < 1 << 40):
        return None
    if size >= 3 * _DUCKDB_HEADER + blocks * block_size:
        return None
    return size, block_size, (size - 3 * _DUCKDB_HEADER) // block_size, blocks, free_list


def duckdb_layout(path: Path) -> bool:
    """Whether the file is laid out as a DuckDB file: its magic, or (overwritten at its start) one of its two
    database headers reading as DuckDB writes them (a block size that is a power of two, a sane block count), which
    the bytes of a text or media file essentially never do at those offsets."""
    try:
        with path.open("rb") as f:
            head = f.read(3 * _DUCKDB_HEADER)
    except OSError:
        return False
    if head[8:12] == b"DUCK":
        return True
    if len(head) < 3 * _DUCKDB_HEADER:
        return False
    for off in (_DUCKDB_HEADER, 2 * _DUCKDB_HEADER):
        _, iteration, _, _, blocks, block_size = struct.unpack_from("<6Q", head, off)
        if 0 < iteration < 1 << 40 and blocks < 1 << 40 and 4096 <= block_size <= 1 << 30 and (
                block_size & (block_size - 1) == 0):
            return True
    return False


_NO_POINTER = (1 << 64) - 1  # an empty free list
_METADATA_PER_BLOCK = 64  # DuckDB splits a metadata block into this many pieces, each led by the next one's pointer
_BLOCK_CHECKSUM = 8


def _free_list(path: Path, block_size: int, pointer: int, present: int) -> list[int] | None:
    """The free blocks the header lists (DuckDB's free list, in the metadata pieces its pointer leads to), read
    from the file; None when it cannot be read here (a piece past the end, a list longer than the file has blocks).
    The caller compares its length with DuckDB's own count before trusting it."""
    if pointer == _NO_POINTER:
        return []
    piece = (block_size - _BLOCK_CHECKSUM) // _METADATA_PER_BLOCK // 8 * 8
    ids: list[int] = []
    data = b""
    count = None
    try:
        with path.open("rb") as f:
            for _ in range(1 << 16):  # pieces: a bound, never reached by a list that fits the file
                block, index = pointer & ((1 << 56) - 1), pointer >> 56
                if block >= present or index >= _METADATA_PER_BLOCK:
                    return None
                f.seek(3 * _DUCKDB_HEADER + block * block_size + _BLOCK_CHECKSUM + index * piece)
                raw = f.read(piece)
                if len(raw) < piece:
                    return None
                pointer = struct.unpack_from("<Q", raw)[0]
                data += raw[8:]
                if count is None:
                    count, data = struct.unpack_from("<Q", data)[0], data[8:]
                    if count > present + (1 << 20):
                        return None
                take = min(count - len(ids), len(data) // 8)
                ids.extend(struct.unpack_from(f"<{take}q", data))
                data = data[take * 8:]
                if len(ids) == count:
                    return ids
                if pointer == _NO_POINTER:
                    return None
    except OSError:
        return None
    return None


def truncated(path: Path, conn: duckdb.DuckDBPyConnection | None = None) -> str | None:
    """Why a DuckDB file is cut short (a copy cut short, a full disk), else None. DuckDB opens such a file and fails
    only when a query reaches a missing block, after a writer may have written into it.

    DuckDB itself may leave the file shorter than its header's block count (it drops free blocks at the end after
    writing the header), but always at a block boundary, and those blocks are in the header's free list: a file
    ending mid-block is cut short; one ending at a boundary is when a block past the end is not free. The free list
    is read from the file and trusted when it holds as many blocks as DuckDB counts free (over `conn`); else the
    tables' blocks are listed (`pragma_storage_info`), which reads every string segment: 11 s and 3 GB at a million
    articles, on every command after a run had shortened the file."""
    short = _shortfall(path)
    if short is None:
        return None
    size, block_size, present, blocks, pointer = short
    if (size - 3 * _DUCKDB_HEADER) % block_size:
        return f"truncated: {size} bytes end inside block {present} of the {blocks} its header counts"
    if conn is None:
        return None
    if pointer != _NO_POINTER and pointer & ((1 << 56) - 1) >= present:
        return f"truncated: {size} bytes hold {present} blocks; its free list is in block {pointer & ((1 << 56) - 1)}"
    free = _free_list(path, block_size, pointer, present)
    counted = conn.execute("select free_blocks from pragma_database_size() "
                           "where database_name = current_database()").fetchall()
    if free is not None and counted and counted[0][0] == len(free) and len(set(free)) == len(free):
        gone = set(range(present, blocks)) - set(free)
        return f"truncated: {size} bytes hold {present} blocks; block {min(gone)} is in use" if gone else None
    used = -1
    tables = conn.execute("select schema_name, table_name from duckdb_tables() "
                          "where database_name = current_database()").fetchall()
    for schema, table in tables:
        row = conn.execute("select max(greatest(block_id, coalesce(list_max(additional_block_ids), -1))) "
                           "from pragma_storage_info(?)", [f'"{schema}"."{table}"']).fetchall()
        used = max(used, row[0][0] if row and row[0][0] is not None else -1)
    if used >= present:
        return f"truncated: {size} bytes hold {present} blocks; its tables use block {used}"
    return None


def damaged_copy(path: Path) -> str | None:
    """Why a copy of a warehouse (the snapshot) cannot be read whole: cut short, or not a DuckDB file at its start
    (overwritten); else None, also when it is missing. Only its headers are read and its size compared with them:
    microseconds, so a run can ask at its end."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return str(exc)
    if head[8:12] != b"DUCK":
        return "not a DuckDB file"
    return truncated(path)


class BusyError(Exception):
    """Another process holds the file open: it cannot be looked into now."""


def classify(path: Path) -> Verdict:
    """What the DuckDB file at `path` is, opened read-only (nothing is written). Raises BusyError when another
    process holds it (a run: a writer still refuses a foreign file in database.migrate, under its lock)."""
    if path.is_dir():
        return Verdict("foreign", "a folder, not a file")
    if not path.exists():
        return Verdict("missing")
    with _opened(path) as conn:
        if isinstance(conn, Verdict):
            return conn
        try:
            cut = truncated(path, conn)
            return Verdict("foreign", cut) if cut else classify_conn(conn)
        except duckdb.Error as exc:  # a catalog that cannot be read is not one to write into
            return Verdict("foreign", _first_line(exc))


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[duckdb.DuckDBPyConnection | Verdict]:
    """A read-only connection to an existing DuckDB file, or the `foreign` verdict of a file that is none."""
    cut = truncated(path)
    if cut:
        yield Verdict("foreign", cut)
        return
    try:
        # No config of its own (a memory cap): DuckDB refuses a second connection of this process to the file
        # with another configuration, and the file would then pass unjudged as if another process held it.
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        text = str(exc)
        if any(m in text for m in _HELD_MARKERS) or isinstance(
                exc, duckdb.ConnectionException):
            raise BusyError(text) from None
        yield Verdict("foreign", _first_line(exc))
        return
    try:
        yield conn
    finally:
        conn.close()


def classify_catalog(path: Path, kind: str) -> Verdict:
    """What a DuckLake's local catalog file (`kind` duckdb or sqlite) is: missing, empty, `newsflow` when it holds
    DuckLake's tables only (the lake inside is judged by classify_conn once attached), or foreign."""
    if path.is_dir():
        return Verdict("foreign", "a folder, not a file")
    if not path.exists():
        return Verdict("missing")
    if path.stat().st_size == 0:
        return Verdict("empty")
    try:
        with path.open("rb") as f:
            magic = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        return Verdict("foreign", exc.strerror or str(exc))
    if kind == "sqlite":
        names = _sqlite_names(path) if magic == _SQLITE_MAGIC else Verdict("foreign", "not a SQLite file")
    elif magic == _SQLITE_MAGIC:
        names = Verdict("foreign", "a SQLite file (a SQLite catalog is written `sqlite:<path>`)")
    else:
        with _opened(path) as conn:
            try:
                names = conn if isinstance(conn, Verdict) else user_objects(conn)
            except duckdb.Error as exc:
                names = Verdict("foreign", _first_line(exc))
    if isinstance(names, Verdict):
        return names
    if not names:
        return Verdict("empty")
    own = [n for n in names if n.split(" ", 1)[1].removeprefix("main.").startswith("ducklake_")]
    if len(own) == len(names) and any(n.endswith(".ducklake_metadata") for n in names):
        return Verdict("newsflow")
    return Verdict("foreign", "not a DuckLake catalog: " + _describe(sorted(set(names) - set(own)) or names))


def _sqlite_names(path: Path) -> list[str] | Verdict:
    """The objects of a SQLite file (SQLite's own and the indexes of tables aside), read-only."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("select type, name from sqlite_master where name not like 'sqlite_%' "
                              "and type <> 'index'").fetchall()
    except sqlite3.Error as exc:
        return Verdict("foreign", f"SQLite: {exc}")
    return [f"{kind} main.{name}" for kind, name in rows]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""DuckDB's memory_limit lowered for one stretch of work, then set back as it was.

Scans of big tables (a lookup without its cache, a full check pass, a lookup cache rebuild, the roll-up) leave
every block they read in DuckDB's buffer pool, up to its memory_limit (80% of RAM by default): gigabytes at a
million articles, held by the process. Under a lower limit the pool evicts as it scans. The limit is the
database's, for every connection to it, so one lock serialises the stretches of a process. (The compaction copies
through a DuckDB of its own, whose limit it sets once: flows/warehouse/compact.py.)

It is set back by value, not by `RESET`: in DuckDB 1.5 `RESET memory_limit` restores the setting but leaves the
buffer pool at the cap (duckdb#22203), so the rest of the process would run capped without saying so. A limit
reads back as rounded text (`18.8 GiB`), and that text set again is a little less (`18.7 GiB`): restored from what
it reads, a limit would shrink with every cap of a long-lived process. So DuckDB's default is restored in bytes,
and any other limit as the value first restored for what it now reads.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

_LOCK = threading.Lock()  # one process-wide limit: a pre-check and a load must not reset it under each other
_RESTORED: dict[str, str] = {}


@contextmanager
def capped(conn: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Run the block with the database's memory_limit at `limit`, then set back to what it was. When the limit
    cannot be set (more than it held right now, a locked configuration), the block runs uncapped."""
    # Set and restored on a cursor of its own: a query that ran out of memory aborts `conn`'s transaction, which
    # then refuses every statement, this one too, until its rollback.
    with _LOCK, conn.cursor() as own:
        try:
            before = _restore_value(_memory_limit(own))
            own.execute("set memory_limit = $m", {"m": limit})
        except duckdb.Error:
            yield
            return
        try:
            yield
        finally:
            own.execute("set memory_limit = $m", {"m": before})
            _RESTORED[_memory_limit(own)] = before


def _memory_limit(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("select current_setting('memory_limit')").fetchall()[0][0])


def _restore_value(shown: str) -> str:
    default_shown, default_exact = _default_limit()
    if shown == default_shown and default_exact:
        return default_exact
    return _RESTORED.get(shown, shown)


@functools.cache
def _default_limit() -> tuple[str, str]:
    """DuckDB's default memory_limit as it reads, and in bytes (80% of the memory it sees) when that reads the
    same ("" when it does not: a rule of DuckDB's that this does not know)."""
    with duckdb.connect() as mem:
        shown = _memory_limit(mem)
        exact = f"{int(0.8 * _memory_seen())}B"
        mem.execute("set memory_limit = $m", {"m": exact})
        return shown, exact if _memory_limit(mem) == shown else ""


def _memory_seen() -> int:
    """The machine's memory, or its cgroup's limit when lower (what DuckDB bases its default on)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total

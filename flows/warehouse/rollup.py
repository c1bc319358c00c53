"""Roll-up of the bookkeeping rows: `feed_fetches`, `check_results` and `runs` rows older than a retention become
daily summaries (`feed_fetch_days`, `check_result_days`, `run_days`, migration 0012), and the detailed rows go, all
in one transaction.

These three tables grow by every run whatever it brings (3.5M feed fetches a year at 100 feeds every 15 minutes),
and nothing reads their old rows one by one: feed health looks at each feed's latest attempt, its latest success
and the last 7 days; `newsflow status` at the last runs and each check's latest outcome. So the rows those read are
kept whatever their age (each feed's latest fetch and latest success, each check's latest outcome, the runs those
belong to, any run still `running`), and per-day counts stay answerable from the `feed_fetches_daily` view.
Re-running it changes nothing: a rolled-up row is deleted with the transaction that counted it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from flows.warehouse import lake, memorylimit
from flows.warehouse.database import query

# table -> its key columns; in this order, so a run is rolled up only once no kept fetch or check refers to it.
TABLES = {"feed_fetches": ("fetch_id",), "check_results": ("run_id", "check_name"), "runs": ("run_id",)}


@dataclass
class Rollup:
    """Rows rolled up per table (detail rows deleted), and the cut-off they were older than."""
    cutoff: datetime
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


# DuckDB deletes a row of a table with a key by taking it out of the key's index, one row at a time: 83-117 us a
# row on this machine, so the first roll-up of a year's bookkeeping (2.3M of 3.2M `feed_fetches` rows) took 275 s,
# holding the run lock, and even `delete` of every row took 256 s. Past a share of the rows kept, the table is built
# again instead, in the same transaction: the rows kept set aside, the table dropped and created again from its own
# statement in the catalog, the rows put back (~2 us a row with its key): 2 s for that roll-up.
REBUILD_RATIO = 50  # rebuilt when the rows rolled up are more than 1/50 of the rows kept
# DuckDB's memory_limit during a roll-up (flows/warehouse/memorylimit.py): the first one at 1M held 1.12 GB
# uncapped (the rows set aside, the blocks scanned), 0.50 GB under 256 MB, 5.3 -> 4.3 s (a dry run on a copy).
MEMORY = "256MB"


def _remove_old(conn: duckdb.DuckDBPyConnection, table: str, keys: tuple[str, ...], old: int) -> None:
    """Delete `table`'s rows listed in rollup_old (`old` of them), or build the table again without them."""
    # Identifiers from TABLES above, never from input.
    listed = "exists (select 1 from rollup_old o where " + " and ".join(f"t.{k} = o.{k}" for k in keys) + ")"
    kept = conn.execute(f"select count(*) from {table}").fetchall()[0][0] - old
    if lake.is_lake(conn) or old * REBUILD_RATIO <= kept:  # a lake's tables have no key index to slow a delete
        conn.execute(f"delete from {table} t where {listed}")
        return
    ddl = conn.execute(query("table_ddl"), {"table": table}).fetchall()[0][0]
    conn.execute(f"create or replace temp table rollup_kept as select * from {table} t where not {listed}")
    conn.execute(f"drop table {table}")
    conn.execute(ddl)
    conn.execute(f"insert into {table} by name select * from rollup_kept")
    conn.execute("drop table rollup_kept")


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def roll_up(conn: duckdb.DuckDBPyConnection, days: int, *, now: datetime | None = None,
            dry_run: bool = False) -> Rollup:
    """Roll up the rows older than `days` days (0: none) in one transaction; `dry_run` counts them only."""
    result = Rollup(cutoff_for(days, now))
    if days <= 0:
        return result
    try:
        with memorylimit.capped(conn, MEMORY):
            _roll_up(conn, result, dry_run)
    except duckdb.OutOfMemoryException:  # rolled back: once more under DuckDB's own limit; a cap never fails it
        result.rows.clear()
        _roll_up(conn, result, dry_run)
    return result


def _roll_up(conn: duckdb.DuckDBPyConnection, result: Rollup, dry_run: bool) -> None:
    conn.execute("begin transaction")
    try:
        for table, keys in TABLES.items():
            # A temp table, so the summary and the delete act on exactly the same rows.
            conn.execute(f"create or replace temp table rollup_old as {query(f'rollup_{table}_old')}",
                         {"cutoff": result.cutoff})
            result.rows[table] = conn.execute("select count(*) from rollup_old").fetchall()[0][0]
            if result.rows[table]:
                conn.execute(query(f"rollup_{table}_merge"))
                _remove_old(conn, table, keys, result.rows[table])
        conn.execute("drop table rollup_old")
    except BaseException:
        conn.execute("rollback")
        raise
    # A dry run did it all, to count what a real one would (the runs freed by the fetches rolled up), and undoes it.
    conn.execute("rollback" if dry_run else "commit")

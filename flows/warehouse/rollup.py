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


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def roll_up(conn: duckdb.DuckDBPyConnection, days: int, *, now: datetime | None = None,
            dry_run: bool = False) -> Rollup:
    """Roll up the rows older than `days` days (0: none) in one transaction; `dry_run` counts them only."""
    result = Rollup(cutoff_for(days, now))
    if days <= 0:
        return result
    conn.execute("begin transaction")
    try:
        for table, keys in TABLES.items():
            # A temp table, so the summary and the delete act on exactly the same rows.
            conn.execute(f"create or replace temp table rollup_old as {query(f'rollup_{table}_old')}",
                         {"cutoff": result.cutoff})
            result.rows[table] = conn.execute("select count(*) from rollup_old").fetchall()[0][0]
            if result.rows[table]:
                conn.execute(query(f"rollup_{table}_merge"))
                # Identifiers from TABLES above, never from input.
                on = " and ".join(f"t.{k} = o.{k}" for k in keys)
                conn.execute(f"delete from {table} t where exists (select 1 from rollup_old o where {on})")
        conn.execute("drop table rollup_old")
    except BaseException:
        conn.execute("rollback")
        raise
    # A dry run did it all, to count what a real one would (the runs freed by the fetches rolled up), and undoes it.
    conn.execute("rollback" if dry_run else "commit")
    return result

"""`newsflow status`: the last runs, failing feeds, the checks' latest outcome, the saved searches' recent matches
and what waits in the staging folder. It only reads: the warehouse read-only, the run locks without taking or
creating them, the search index beside the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

from flows.core.settings import Settings
from flows.warehouse import database, savedmatches, snapshot, staging
from flows.warehouse.runlock import held, run_lock_name, shards_alive


def dead_runs(conn: duckdb.DuckDBPyConnection, db_path: Path) -> list[str]:
    """Runs marked `running` whose process is gone: a stage-only run whose shard lock nobody holds, or any
    other run but the newest while the warehouse's run lock is held (one such run at a time)."""
    shards = set(shards_alive(db_path))
    main_held = held(db_path)
    dead, main_seen = [], False
    for run_id, _flow, parameters in conn.execute(database.query("running_runs")).fetchall():
        try:
            params = json.loads(parameters) if parameters else {}
        except ValueError:
            params = {}
        name = run_lock_name(params if isinstance(params, dict) else {})
        if name is not None:
            alive = name in shards
        else:
            alive, main_seen = main_held and not main_seen, True
        if not alive:
            dead.append(run_id)
    return dead


def _has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(conn.execute("select count(*) from duckdb_tables() where database_name = current_database() "
                             "and schema_name = 'main' and table_name = ?", [name]).fetchall()[0][0])


def _quality_line(conn: duckdb.DuckDBPyConnection) -> None:
    """This week's flagged articles (docs/quality.md), or why a warehouse before migration 0009 has none."""
    try:
        articles, paywalled, teasers, consent = conn.execute(database.query("status_quality")).fetchall()[0]
    except duckdb.BinderException:  # read only: an older warehouse is not migrated here
        print("Article quality: not recorded in this warehouse yet (the next ingest adds the flags)")
        return
    print(f"Articles stored in the last 7 days: {articles}; paywalled {paywalled}, teasers {teasers}, "
          f"consent pages {consent}")


def show(settings: Settings) -> None:
    """Print the status of the warehouse and its staging folder."""
    wh = settings.warehouse
    window = None
    with database.connect(wh, read_only=True, wait=wh.waits.read) as conn:
        conn.register("dead_runs", pa.table({"run_id": pa.array(dead_runs(conn, wh.path), pa.string())}))
        print("Last runs:")
        conn.sql(database.query("status_runs")).show(max_width=200)
        print("Feeds failing or disabled:")
        conn.sql(database.query("run_report")).show(max_width=200)
        _quality_line(conn)
        print("Warehouse checks (latest outcome of each; `newsflow check` runs them now):")
        conn.sql(database.query("status_checks")).show(max_width=200)
        quarantined = staging.quarantined(wh.staging_dir)
        if quarantined:
            print(f"Quarantined staged batches (unreadable, moved aside; docs/operations.md): {len(quarantined)} "
                  f"in {wh.staging_dir / staging.QUARANTINE}")
            if _has_table(conn, "staged_quarantine"):
                conn.sql(database.query("status_quarantine")).show(max_width=200)
            else:
                print("\n".join(f"  {p.name}" for p in quarantined))
        if settings.searches:
            window = savedmatches.window(conn)
    if window is not None:  # searched with the warehouse closed: the search reads only the index beside it
        print("\n".join(savedmatches.lines(savedmatches.recent(wh, settings.searches, window))))
    print(snapshot.age_line(wh))
    staged = staging.pending(wh.staging_dir)
    print(f"Staged batches waiting to load: {len(staged)}")
    for path in staged:
        reason = staging.unreadable(path)
        if reason:
            print(f"  unreadable: {path.name}: {reason} (the next load moves it to quarantine)")
    for path in staging.strays(wh.staging_dir):
        print(f"  not a staged batch, left alone: {path}")

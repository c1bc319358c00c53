"""Warehouse checks: each invariant is a query (warehouse/checks/<name>.sql) returning the rows that break it.

A check holds when it returns zero rows (dbt-test style). Four facts the warehouse cannot know reach the checks
from outside: the runs known to be alive (`$alive_runs`, `$started_before`), the batches waiting in the
staging folder (the relation `staged_batches`), those moved into its quarantine (`quarantined_batches`) and the
current dedup settings (`$dedup_method`, `$dedup_params`).
Results go to `check_results` and `runs.checks_failed`.

Incremental (issue 23): a check that uses `$since` reads only rows with `load_seq > $since` (the load sequence number,
warehouse/migrations/0010). A full pass gives -1; an incremental pass gives the number up to which that check last
held (`check_watermarks`), so a run's checks cost what was loaded since, not what is stored. The watermark moves to
the number read before the pass (`until`) only when the check returned zero rows: a failing check keeps reporting
its rows, and a load committed during the pass has a number above `until`, so no pass can step over it. Checks
without `$since` (runs, staging, quarantine, feed state, the index record) read their small tables whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.warehouse import candidates, database, memorylimit, staging
from flows.warehouse.runlock import run_lock, shards_alive

CHECKS_DIR = database.SQL_DIR / "checks"
log = logging.getLogger("newsflow.checks")
SAMPLE_ROWS = 5
# DuckDB's memory_limit during each check of a full pass (_run_capped). At 1M articles (`newsflow check`, read only,
# a throwaway probe): 1 GB 8.9 s and a 1.47 GB peak, 256 MB 7.9 s and 0.56 GB; 128 MB ran shingle_samples_mismatch
# out of memory (then run again uncapped).
FULL_PASS_MEMORY = "256MB"
RETRY_MEMORY = "1GB"
_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_STAGED_SCHEMA = pa.schema([("batch_id", pa.string()), ("run_id", pa.string()),
                            ("staged_at", pa.timestamp("us", tz="UTC"))])
_QUARANTINE_SCHEMA = pa.schema([("folder", pa.string()), ("path", pa.string())])


@dataclass(frozen=True)
class CheckResult:
    name: str
    offending_rows: int  # -1 when the check could not run (see `error`)
    sample: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0
    error: str | None = None
    skipped: str | None = None  # why the check was not run; a skipped check is neither passed nor failed
    scope: str = "full"  # full: every row; incremental: rows with since_seq < load_seq <= until_seq
    since_seq: int | None = None  # for a check scoped by $since: what it read from (-1: every row) and up to
    until_seq: int | None = None

    @property
    def failed(self) -> bool:
        return self.skipped is None and self.offending_rows != 0


@dataclass(frozen=True)
class CheckRun:
    run_id: str
    results: list[CheckResult]
    note: str | None = None  # what the checks assumed about live runs, for the person reading the output

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed]


def check_files() -> list[Path]:
    """Every check, in name order."""
    return sorted(CHECKS_DIR.glob("*.sql"))


def staged_batches(staging_dir: Path) -> pa.Table:
    """The complete staged batches with the time each was staged (its `run_id` file is written first)."""
    rows = []
    for path in staging.pending(staging_dir):
        marker = path / "run_id"
        try:
            run_id = marker.read_text().strip()
            mtime = marker.stat().st_mtime
        except OSError:  # a batch without its marker is still a batch waiting; its folder dates it
            run_id, mtime = "", path.stat().st_mtime
        rows.append({"batch_id": path.name, "run_id": run_id,
                     "staged_at": datetime.fromtimestamp(mtime, UTC)})
    return pa.Table.from_pylist(rows, schema=_STAGED_SCHEMA)


def quarantined_batches(staging_dir: Path) -> pa.Table:
    """The batches in <staging_dir>/quarantine/: folder name and full path (as `staged_quarantine.path`)."""
    rows = [{"folder": p.name, "path": str(p)} for p in staging.quarantined(staging_dir)]
    return pa.Table.from_pylist(rows, schema=_QUARANTINE_SCHEMA)


def _sample(cols: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    # Round-tripped through JSON so the sample holds what check_results.sample stores (timestamps as text).
    return json.loads(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], default=str))


def is_scoped(sql: str) -> bool:
    """Whether a check reads only the rows loaded since its watermark (it uses `$since`)."""
    return "since" in _PARAM.findall(sql)


def watermarks(conn: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], int]:
    """The load sequence number up to which each scoped check last held, and the current one (`until`)."""
    held = dict(conn.execute(database.query("check_watermarks")).fetchall())
    return held, conn.execute("select max(seq) from load_sequence").fetchall()[0][0] or 0


def run_one(conn: duckdb.DuckDBPyConnection, name: str, sql: str, params: Mapping[str, Any]) -> CheckResult:
    """Run one check: its count of offending rows and the first few of them, in one pass."""
    used = {p: params[p] for p in set(_PARAM.findall(sql)) if p in params}
    since, until = used.get("since"), params.get("until")
    scope = {"scope": "incremental" if since is not None and since >= 0 else "full", "since_seq": since,
             "until_seq": until if since is not None else None}
    text = sql.strip().rstrip(";")
    start = time.perf_counter()
    try:
        cur = conn.execute(f"select *, count(*) over () as _offending from (\n{text}\n) limit {SAMPLE_ROWS}", used)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    except duckdb.Error as exc:  # a broken check is a failed check, not a broken run
        return CheckResult(name, -1, [], (time.perf_counter() - start) * 1000, error=f"{type(exc).__name__}: {exc}",
                           **scope)
    ms = (time.perf_counter() - start) * 1000
    count = rows[0][-1] if rows else 0
    return CheckResult(name, count, _sample(cols[:-1], [r[:-1] for r in rows]), ms, **scope)


def _run_capped(conn: duckdb.DuckDBPyConnection, name: str, sql: str, params: Mapping[str, Any],
                capped: bool) -> CheckResult:
    """run_one, under FULL_PASS_MEMORY when `capped`. A full pass reads every link and index row (20M and 80M at a
    year): DuckDB keeps what it scanned in its buffer pool up to 80% of RAM, 2.9 GB of `newsflow check` at 1M;
    capped, it evicts as it goes. A check that runs out of memory under the cap (its groups or hash table outgrew
    it: a larger warehouse than measured) runs again under RETRY_MEMORY, then under DuckDB's own limit: a cap must
    never fail a check."""
    for limit in (FULL_PASS_MEMORY, RETRY_MEMORY, None) if capped else (None,):
        with memorylimit.capped(conn, limit) if limit is not None else contextlib.nullcontext():
            result = run_one(conn, name, sql, params)
        if result.error is None or not result.error.startswith(duckdb.OutOfMemoryException.__name__):
            break
        log.info("check %s ran out of memory under %s: running it again with more", name, limit)
    return result


def run_checks(conn: duckdb.DuckDBPyConnection, *, staging_dir: Path, alive_runs: Sequence[str] = (),
               started_before: datetime | None = None, skip: Mapping[str, str] | None = None,
               dedup: DedupSettings | None = None, full: bool = True) -> list[CheckResult]:
    """Run every check over `conn`; `skip` maps check names to the reason they are not run. `dedup` is the
    current dedup configuration, which dedup_index_stale compares the stored index with. `full`: every row;
    else each scoped check reads the rows loaded since its watermark (module docstring)."""
    # Read before any check runs: every row numbered up to it is committed, so the watermark can move to it.
    held, until = watermarks(conn)
    params: dict[str, Any] = {"alive_runs": list(alive_runs), "started_before": started_before or datetime.now(UTC),
                              "until": until}
    skip = dict(skip or {})
    if dedup is None:
        skip.setdefault("dedup_index_stale", "the current dedup settings were not given")
    else:
        params.update(candidates.check_params(dedup))
    conn.register("staged_batches", staged_batches(staging_dir))
    conn.register("quarantined_batches", quarantined_batches(staging_dir))
    try:
        results = []
        for path in check_files():
            if path.stem in skip:
                results.append(CheckResult(path.stem, 0, skipped=skip[path.stem]))
            else:
                since = -1 if full else held.get(path.stem, -1)
                results.append(_run_capped(conn, path.stem, path.read_text(), {**params, "since": since}, full))
        return results
    finally:
        conn.unregister("staged_batches")
        conn.unregister("quarantined_batches")


def store_results(conn: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[CheckResult]) -> None:
    """Record the outcome in check_results (one row per check run) and runs.checks_failed, and move the watermark
    of each scoped check that held, in one transaction."""
    now = datetime.now(UTC)
    rows = [{"run_id": run_id, "check_name": r.name, "offending_rows": r.offending_rows,
             "sample": json.dumps({"error": r.error} if r.error else r.sample, default=str),
             "duration_ms": r.duration_ms, "checked_at": now, "scope": r.scope, "since_seq": r.since_seq,
             "until_seq": r.until_seq} for r in results if r.skipped is None]
    held = [{"check_name": r.name, "seq": r.until_seq, "run_id": run_id, "checked_at": now}
            for r in results if r.skipped is None and r.until_seq is not None and r.offending_rows == 0]
    with database.transaction(conn):
        if rows:  # an empty list has no type to unnest
            conn.execute(database.query("check_results_insert"), {"rows": rows})
        if held:
            conn.execute(database.query("check_watermarks_advance"), {"rows": held})
        conn.execute(database.query("run_checks_failed"),
                     {"run_id": run_id, "failed": sum(1 for r in results if r.failed)})


def run_and_store(settings: WarehouseSettings, run_id: str, *, alive_runs: Sequence[str] | None = None,
                  wait: float | None = None, dedup: DedupSettings | None = None,
                  conn: duckdb.DuckDBPyConnection | None = None, full: bool = False) -> CheckRun:
    """Run every check against the live warehouse and store the outcome under `run_id`; over `conn` when given
    (a run that reads more at its end on the same connection), else over a connection of its own. Incremental
    (the rows loaded since each check last held) unless `full` (every row: `newsflow check`, maintenance).

    `alive_runs=None` means the caller is not a run (`newsflow check`): the run lock is tried without waiting
    and released at once (holding it would make an ingest starting meanwhile skip its work). Free, no run is
    alive; held, the newest `running` run is the live one. Raises WarehouseError when the warehouse is missing or
    unusable, WarehouseLocked when another process holds it past `wait`.
    """
    if not database.exists(settings):
        raise database.WarehouseError(f"{settings.path}: no warehouse yet (run `newsflow ingest` or "
                                       "`newsflow demo` first)")
    note = None
    started_before = datetime.now(UTC)
    held = False
    skip: dict[str, str] = {}
    if alive_runs is None:
        try:
            with run_lock(settings.path) as mine:
                held = not mine
        except (OSError, database.WarehouseError) as exc:
            # A read-only folder, or a folder where the lock file belongs: which runs are alive cannot be told.
            skip["stale_running_runs"] = f"the run lock could not be tested ({exc})"
    alive = shards_alive(settings.path)
    if alive:  # stage-only shard runs are staging: their `running` rows (loaded from staging) are alive
        skip.setdefault("stale_running_runs", f"shard runs are staging right now ({', '.join(alive)})")
    with contextlib.nullcontext(conn) if conn is not None else database.connect(settings, wait=wait) as conn:
        # Not database.schema_version: its fetchone() leaves a result open, and DuckDB 2 then refuses register().
        try:
            version = conn.execute("select coalesce(max(version), 0) from schema_migrations").fetchall()[0][0]
        except duckdb.CatalogException:
            version = 0
        if version > len(database.migrations()):  # a newer newsflow's warehouse: written by no older one
            raise database.WarehouseError(f"{settings.path}: warehouse schema is version {version}, newer than "
                                           f"this newsflow ({len(database.migrations())}); upgrade newsflow")
        if version < len(database.migrations()):
            raise database.WarehouseError(
                f"{settings.path}: schema version {version}, the checks need {len(database.migrations())}; "
                "the next `newsflow ingest` migrates it")
        if alive_runs is None:
            alive_runs = []
            if held and not skip:
                newest = next(iter(conn.execute(database.query("newest_running_run")).fetchall()), None)
                alive_runs = [newest[0]] if newest else []
                note = ("a run holds the run lock: its run " + (f"{newest[0]} " if newest else "")
                        + "is taken as alive by stale_running_runs")
        results = run_checks(conn, staging_dir=settings.staging_dir, alive_runs=alive_runs,
                             started_before=started_before, skip=skip, dedup=dedup, full=full)
        store_results(conn, run_id, results)
    return CheckRun(run_id, results, note)


def new_check_id() -> str:
    """The run id under which `newsflow check` stores its results."""
    return f"check:{uuid.uuid4()}"

"""The maintenance flow and its steps on real DuckDB files and a real DuckLake: roll-up that keeps feed health and
status, compaction under a concurrent reader, DuckLake expiry, the lookup cache rebuilt off the hot path, the flow
with its `runs` row under the Prefect harness, and `newsflow maintain`; DuckDB's memory limit lowered for the
scans of big tables and set back by value.

Covers: flows.ops.maintain, flows.ops.upkeep, flows.warehouse.rollup, flows.warehouse.compact
Covers: flows.warehouse.memorylimit
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_keycache import SETTINGS, _batches, _load

from flows.core.settings import WarehouseSettings, load_settings
from flows.ops import upkeep
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.warehouse import compact, database, keycache, lake, memorylimit, rollup, search_index
from flows.warehouse.runlock import run_lock

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
PROJECT = Path(__file__).resolve().parents[1]


def _checksums(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Row count and an order-free hash of every table's contents."""
    tables = [r[0] for r in conn.execute("select table_name from duckdb_tables() where database_name = "
                                         "current_database() and not internal order by 1").fetchall()]
    return {t: tuple(conn.execute(f'select count(*), coalesce(sum(hash(x)), 0) from (select columns(*) from "{t}") x'
                                  ).fetchall()[0]) for t in tables}


# --- roll-up ------------------------------------------------------------------------------------------------


def _bookkeeping(conn: duckdb.DuckDBPyConnection) -> None:
    """200 half-daily runs back from NOW, two feeds each (one failing in three), a check per run, feed states."""
    for i in range(200):
        t = NOW - timedelta(hours=12 * i)
        run = f"run{i:03d}"
        conn.execute("insert into runs (run_id, flow, started_at, finished_at, status, feeds_ok) "
                     "values (?, 'ingest', ?, ?, 'completed', 1)", [run, t, t + timedelta(seconds=5)])
        for feed in ("a", "b"):
            failed = (i + (feed == "b")) % 3 == 0
            conn.execute("insert into feed_fetches (fetch_id, run_id, feed, url, outcome, error, fetched_at, "
                         "new_entries) values (?, ?, ?, 'https://x.test/f', ?, ?, ?, 1)",
                         [f"{run}:{feed}", run, feed, "failed" if failed else "ok",
                          "timeout" if failed else None, t])
        conn.execute("insert into check_results (run_id, check_name, offending_rows, sample, duration_ms, checked_at) "
                     "values (?, 'orphans', ?, null, 1.5, ?)", [run, i % 2, t])
    conn.execute("insert into feeds (feed, url, configured_url, consecutive_failures, last_success_at) values "
                 "('a', 'https://x.test/f', 'https://x.test/f', 0, ?), "
                 "('b', 'https://x.test/f', 'https://x.test/f', 4, ?)", [NOW, NOW - timedelta(days=2)])


def _answers(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What feed health, the run's feed states and `newsflow status` read, and the per-day counts."""
    q = database.query
    return {
        "health": conn.execute("select feed, state, consecutive_failures, last_attempt_at, last_outcome, "
                               "last_outcome_error from feed_health order by feed").fetchall(),
        "feed_states": conn.execute(q("feed_states") + " order by feed").fetchall(),
        "failing": conn.execute(q("failing_feeds"), {"alert_after": 3}).fetchall(),
        "checks": conn.execute(q("status_checks")).fetchall(),
        "status_feeds": conn.execute(q("run_report")).fetchall(),
        "report_health": conn.execute(q("report_feed_health")).fetchall(),
        "daily": conn.execute("select * from feed_fetches_daily order by day, feed").fetchall(),
    }


def _settings(backend: str, tmp_path: Path) -> WarehouseSettings:
    if backend == "ducklake":
        return WarehouseSettings(backend="ducklake", catalog=str(tmp_path / "lake.duckdb"), path=tmp_path / "w.duckdb")
    return WarehouseSettings(path=tmp_path / "w.duckdb")


@pytest.mark.parametrize("backend", ["duckdb", "ducklake"])
def test_rollup_keeps_feed_health_and_status_and_is_idempotent(backend: str, tmp_path: Path) -> None:
    with database.connect(_settings(backend, tmp_path)) as conn:
        database.migrate(conn)
        _bookkeeping(conn)
        before = _answers(conn)
        dry = rollup.roll_up(conn, 30, now=NOW, dry_run=True)
        assert conn.execute("select count(*) from feed_fetches").fetchall()[0][0] == 400  # a dry run writes nothing
        done = rollup.roll_up(conn, 30, now=NOW)
        assert done.rows == dry.rows
        # Every run older than 30 days: its fetches, check and row, but each feed's and check's latest rows stay.
        assert done.rows == {"feed_fetches": 278, "check_results": 139, "runs": 139}
        assert conn.execute("select min(fetched_at) from feed_fetches").fetchall()[0][0] >= done.cutoff
        assert _answers(conn) == before
        summed = conn.execute("select sum(fetches), sum(failed) from feed_fetch_days").fetchall()[0]
        failures = sum((i + b) % 3 == 0 for i in range(61, 200) for b in (0, 1))
        assert summed == (278, failures)
        assert conn.execute("select sum(runs), sum(feeds_ok) from run_days").fetchall()[0] == (139, 139)
        again = rollup.roll_up(conn, 30, now=NOW)
        assert again.total == 0 and _answers(conn) == before
        # A later roll-up adds to the days already summarised, never counting a row twice.
        later = rollup.roll_up(conn, 10, now=NOW)
        assert later.rows["feed_fetches"] == 80 and _answers(conn) == before
        assert conn.execute("select sum(fetches) from feed_fetch_days").fetchall()[0][0] == 358


def test_a_rollup_that_builds_its_tables_again_leaves_what_deleting_rows_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting many rows of a keyed table is slow in DuckDB (one index removal a row), so a large roll-up builds
    the table again from its catalog statement: the same rows, summaries, answers, columns, defaults and keys."""
    tables = ("feed_fetches", "check_results", "runs", "feed_fetch_days", "check_result_days", "run_days")

    def state(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        return {**_answers(conn), **{t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr)
                                     for t in tables},
                "columns": conn.execute("select table_name, column_name, data_type, column_default, is_nullable "
                                        "from duckdb_columns() where table_name in ('feed_fetches', "
                                        "'check_results', 'runs') order by all").fetchall(),
                "keys": conn.execute("select table_name, constraint_type, constraint_text from duckdb_constraints() "
                                     "where table_name in ('feed_fetches', 'check_results', 'runs') "
                                     "order by all").fetchall()}

    results = {}
    for ratio in (0, 10**9):  # 0: always delete; 10**9: always build again
        monkeypatch.setattr(rollup, "REBUILD_RATIO", ratio)
        with duckdb.connect(str(tmp_path / f"w{ratio}.duckdb")) as conn:
            database.migrate(conn)
            _bookkeeping(conn)
            before = _answers(conn)
            done = rollup.roll_up(conn, 30, now=NOW)
            assert done.rows == {"feed_fetches": 278, "check_results": 139, "runs": 139}
            assert _answers(conn) == before
            results[ratio] = state(conn)
            # The key holds in the table built again, and a dry run after it still writes nothing.
            with pytest.raises(duckdb.ConstraintException):
                conn.execute("insert into runs (run_id, flow, started_at, status) "
                             "select run_id, flow, started_at, status from runs limit 1")
            assert rollup.roll_up(conn, 10, now=NOW, dry_run=True).rows["feed_fetches"] == 80
            assert state(conn) == results[ratio]
    assert results[0] == results[10**9]


def test_a_rollup_that_runs_out_of_memory_under_its_cap_runs_again_uncapped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        database.migrate(conn)
        _bookkeeping(conn)
        before = _answers(conn)
        with memorylimit.capped(conn, "8MB"), pytest.raises(duckdb.OutOfMemoryException):  # the cap bites
            rollup._roll_up(conn, rollup.Rollup(rollup.cutoff_for(30, NOW)), dry_run=True)
        monkeypatch.setattr(rollup, "MEMORY", "8MB")
        done = rollup.roll_up(conn, 30, now=NOW)
        assert done.rows == {"feed_fetches": 278, "check_results": 139, "runs": 139}
        assert _answers(conn) == before
        assert conn.execute("select sum(fetches) from feed_fetch_days").fetchall()[0][0] == 278


def test_rollup_never_takes_a_running_run_nor_the_latest_success(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        database.migrate(conn)
        old = NOW - timedelta(days=200)
        conn.execute("insert into runs (run_id, flow, started_at, status) values ('dead', 'ingest', ?, 'running')",
                     [old])
        conn.execute("insert into runs (run_id, flow, started_at, status) values ('ok1', 'ingest', ?, 'completed')",
                     [old])
        conn.execute("insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at) values "
                     "('ok1:a', 'ok1', 'a', 'u', 'ok', ?), ('dead:a', 'dead', 'a', 'u', 'failed', ?)",
                     [old, old + timedelta(hours=1)])
        assert rollup.roll_up(conn, 90, now=NOW).total == 0
        assert conn.execute("select count(*) from runs").fetchall()[0][0] == 2


# --- compaction -------------------------------------------------------------------------------------------

_READER = """
import sys
from flows.core.settings import WarehouseSettings
from flows.warehouse import database
sys.path.insert(0, sys.argv[2])
from test_maintain import _checksums
wh = WarehouseSettings(path=sys.argv[1])
with database.reader(wh) as (path, conn):
    print(repr(_checksums(conn)), flush=True)
    sys.stdin.readline()  # the test compacts the file now, this connection still open
    print(repr(_checksums(conn)), flush=True)
with database.reader(wh) as (path, conn):
    print(repr(_checksums(conn)), flush=True)
"""


def _filled(path: Path, articles: int = 6000) -> WarehouseSettings:
    """A warehouse with index-sized tables, 40% of its articles' rows then deleted (as a purge or roll-up does)."""
    wh = WarehouseSettings(path=path)
    with database.connect(wh) as conn:
        database.migrate(conn)
        conn.execute("insert into lsh_buckets select (hash(i * 131 + b) >> 1)::bigint, i, 1 "
                     "from range($n) t(i), range(32) u(b)", {"n": articles})
        conn.execute("insert into shingle_samples select (hash(i * 977 + s) >> 1)::bigint, i, 1 "
                     "from range($n) t(i), range(56) u(s)", {"n": articles})
        conn.execute("insert into entries (feed, guid, url, title, published_at, first_seen_at, first_run_id) "
                     "select 'f', 'g' || i, 'https://x.test/' || i, repeat('t', 200) || i, now(), now(), 'r' "
                     "from range($n) t(i)", {"n": articles})
        for table in ("lsh_buckets", "shingle_samples"):
            conn.execute(f"delete from {table} where article_id % 5 < 2")
        conn.execute("delete from entries where hash(guid) % 5 < 2")
        conn.execute("checkpoint")
    return wh


def test_compaction_under_a_concurrent_reader_keeps_every_row(tmp_path: Path) -> None:
    wh = _filled(tmp_path / "w.duckdb")
    with database.connect(wh, read_only=True) as conn:
        before = _checksums(conn)
    size = wh.path.stat().st_size
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(wh.path), str(Path(__file__).parent)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert eval(reader.stdout.readline()) == before  # the reader holds the file open from here
        not_yet = compact.compact(wh, min_free_ratio=1.0)
        assert not not_yet.done and "below the threshold" in not_yet.reason
        done = compact.compact(wh, min_free_ratio=0.01)
        reader.stdin.write("go\n")
        reader.stdin.flush()
        during, after_reopen = eval(reader.stdout.readline()), eval(reader.stdout.readline())
    finally:
        reader.stdin.close()  # type: ignore[union-attr]
        assert reader.wait(timeout=60) == 0
    assert done.done and done.bytes_before == size and done.bytes_after == wh.path.stat().st_size < size
    assert during == before  # the open reader kept reading the old file, consistently
    assert after_reopen == before  # a new reader reads the new file: every table and row identical
    with database.connect(wh, read_only=True) as conn:
        assert _checksums(conn) == before
        assert not database._views_stale(conn, lake=False)  # the views and their marks came along
    assert not compact.temp_path(wh.path).exists() and not Path(f"{wh.path}.wal").exists()
    with database.connect(wh) as conn:  # and it takes writes again
        conn.execute("insert into entries (feed, guid, url, first_seen_at, first_run_id) "
                     "values ('f', 'new', 'u', now(), 'r')")


def test_the_dead_space_estimate_reads_storage_info_only_for_tables_with_deleted_rows(tmp_path: Path) -> None:
    """space() weighs the blocks deleted rows still fill; a table whose catalog row count shows no deletion is
    skipped (reading its storage info cost 2.6 GB at 1M), and the estimate is the one that reads every table's,
    rows deleted at a table's end included."""
    wh = _filled(tmp_path / "w.duckdb")  # rows deleted across lsh_buckets, shingle_samples and entries
    with database.connect(wh) as conn:  # and a table whose newest rows were deleted: no row number shows it
        conn.execute("create table tail_deleted as select range as id, repeat('x', 80) as s from range(100000)")
        conn.execute("delete from tail_deleted where id >= 90000")
        conn.execute("checkpoint")

    def reference(conn: duckdb.DuckDBPyConnection) -> float:
        dead = 0.0
        for table in compact._tables(conn, "old"):
            live = conn.execute(f'select count(*) from old."{table}"').fetchall()[0][0]
            stored, blocks = conn.execute(
                "select coalesce(sum(count) filter (where column_id = 0 and segment_type <> 'VALIDITY'), 0), "
                f"count(distinct block_id) from pragma_storage_info('old.main.{table}')").fetchall()[0]
            dead += blocks * (stored - live) / stored if stored > live else 0.0
        return dead

    conn = duckdb.connect(":memory:")
    try:
        compact._attach_old(conn, wh.path, 0)
        got = compact.space(conn, "old", wh.path)
        assert got.dead_blocks > 0 and got.dead_blocks == pytest.approx(reference(conn))
        conn.execute("detach old")
        with database.connect(wh) as plain:  # without the tail-deleted table, less dead space is found
            plain.execute("drop table tail_deleted")
        compact._attach_old(conn, wh.path, 0)
        assert compact.space(conn, "old", wh.path).dead_blocks < got.dead_blocks
    finally:
        conn.close()


# --- DuckLake ---------------------------------------------------------------------------------------------


def test_ducklake_expiry_removes_old_snapshots_and_files_and_keeps_the_data(tmp_path: Path) -> None:
    wh = WarehouseSettings(backend="ducklake", catalog=str(tmp_path / "lake.duckdb"))
    data = Path(wh.lake_data_path)
    with database.connect(wh) as conn:
        database.migrate(conn)
        for i in range(6):  # six loads, each past DuckLake's inlining: a data file each
            conn.execute("insert into entries (feed, guid, url, first_seen_at, first_run_id) "
                         "select 'f', 'g' || i, 'u' || i, now(), 'r' || $load from range($a, $b) t(i)",
                         {"a": i * 1000, "b": i * 1000 + 1000, "load": i})
        # Two loads' rows all gone (their files unreferenced once the snapshots that had them expire), some of
        # another's.
        conn.execute("delete from entries where first_run_id in ('r0', 'r1') or guid like '%7'")
        before = _checksums(conn)
        snapshots = conn.execute("select count(*) from ducklake_snapshots('lake')").fetchall()[0][0]
    files = len(list(data.rglob("*.parquet")))
    with database.connect(wh) as conn:
        dry = lake.upkeep(conn, datetime.now(UTC) + timedelta(seconds=1), dry_run=True)
        assert dry["snapshots_expired"] == snapshots - 1
        assert conn.execute("select count(*) from ducklake_snapshots('lake')").fetchall()[0][0] == snapshots
        done = lake.upkeep(conn, datetime.now(UTC) + timedelta(seconds=1))
        assert done["snapshots_expired"] > 0 and done["files_deleted"] > 0
        assert conn.execute("select count(*) from ducklake_snapshots('lake')").fetchall()[0][0] < snapshots
        assert _checksums(conn) == before
    assert len(list(data.rglob("*.parquet"))) < files
    with database.connect(wh, read_only=True) as conn:  # a fresh reader sees the same
        assert _checksums(conn) == before


# --- the lookup cache, off the hot path ------------------------------------------------------------------------


def test_a_load_without_cache_reads_the_tables_and_maintenance_rebuilds_it(tmp_path: Path) -> None:
    batches = _batches(seed=3, n_batches=6, per_batch=12)
    cached = WarehouseSettings(path=tmp_path / "c" / "w.duckdb")
    bare = WarehouseSettings(path=tmp_path / "b" / "w.duckdb")
    for wh in (cached, bare):
        _load(wh, batches[:3])
    folder = bare.path.parent / f"{bare.path.name}.keys"
    shutil.rmtree(folder)
    for wh in (cached, bare):
        _load(wh, batches[3:5], start=3)
    assert not (folder / "manifest.json").exists()  # the loads never rebuilt it
    q = "select url, duplicate_of, method from duplicates order by url"
    with database.connect(cached, read_only=True) as a, database.connect(bare, read_only=True) as b:
        assert a.execute(q).fetchall() == b.execute(q).fetchall()  # the same dedup decisions
        assert a.execute(q).fetchall()  # ... and there were copies to decide on
        assert keycache.status(b) == "missing"
    settings = load_settings(warehouse=bare.path, env={}, overrides={"dedup": {"cache_refresh_articles": 1}})
    result = upkeep.run_step("cache", settings, "m", False)
    assert "lookup cache missing: rebuilt" in result.did and result.bytes_after > 0
    with database.connect(bare, read_only=True) as conn:
        assert keycache.status(conn) == "current"
        seq = keycache.index_state(conn).seq  # type: ignore[union-attr]
    _load(bare, batches[5:], start=5, settings=SETTINGS)
    with database.connect(bare, read_only=True) as conn:
        state = keycache.index_state(conn)
        assert state is not None and state.seq > seq
        assert keycache.status(conn) == "current"  # the next load used it and brought it up to date
    # The search index: built by the step when missing; present, compared with every article, which finds what
    # the runs' refreshes (reading only what loads wrote since) cannot: a row edited by hand.
    assert "search index missing: base" in result.did
    assert search_index.refresh(settings).compared == "new"  # the last load's articles, as a run's refresh
    with database.connect(bare) as conn:
        conn.execute("update articles set text_hash = 'edited by hand' "
                     "where article_id = (select min(article_id) from articles)")
    again = upkeep.run_step("cache", settings, "m", False)
    assert "search index present: compared with every article (1 indexed)" in again.did


# --- the flow and the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_wh(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flows.run.ingest import ingest

    tmp = tmp_path_factory.mktemp("maintain")
    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, tmp / "wh" / "demo.duckdb", tmp)
        ingest(config=str(config))
    return tmp / "wh" / "demo.duckdb"


def test_the_flow_runs_every_step_and_records_its_run(demo_wh: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.ops.maintain import maintain

    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_wh, db)
    monkeypatch.setenv("NEWSFLOW_MAINTENANCE__COMPACT_FREE_RATIO", "0.0001")
    monkeypatch.setenv("NEWSFLOW_MAINTENANCE__COMPACT_MIN_FREE_BYTES", "0")
    dry = maintain(dry_run=True, warehouse_path=str(db))
    assert [r["step"] for r in dry["steps"]] == list(upkeep.STEPS)
    settings = load_settings(warehouse=db, env={})
    with database.connect(settings.warehouse, read_only=True) as conn:
        assert conn.execute("select count(*) from runs where flow = 'maintain'").fetchall()[0][0] == 0
        before = _checksums(conn)
    result = maintain(warehouse_path=str(db))
    did = {r["step"]: r for r in result["steps"]}
    assert "lookup cache missing: rebuilt" in did["cache"]["did"]  # the demo's first load left none to refresh
    assert did["compact"]["did"].startswith("compacted")
    assert did["snapshot"]["did"] == "published"  # the compacted file is newer than any snapshot
    assert settings.warehouse.snapshot_path.exists()
    with database.connect(settings.warehouse, read_only=True) as conn:
        status, message = conn.execute("select status, message from runs where flow = 'maintain'").fetchall()[0]
        assert status == "completed" and "rollup:" in message
        after = _checksums(conn)
        assert keycache.status(conn) == "current"
    # Nothing the demo stored is old enough to roll up: its tables are as they were, plus the run's own rows.
    assert {t: v for t, v in after.items() if t not in ("runs", "check_results")} == \
           {t: v for t, v in before.items() if t not in ("runs", "check_results")}


def test_a_failing_step_is_recorded_and_the_others_still_run(demo_wh: Path, tmp_path: Path) -> None:
    """One step's fault (here the lookup cache's manifest replaced by a folder) fails that step alone: the steps
    after it run (the snapshot is published), the run is recorded as failed naming the step, the command exits 1."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_wh, db)
    keys = tmp_path / "demo.duckdb.keys"
    (keys / "manifest.json").mkdir(parents=True)
    settings = load_settings(warehouse=db, env={})
    assert not settings.warehouse.snapshot_path.exists()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "maintain", "--warehouse", str(db)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)},
                          timeout=600, check=False)
    out, err = done.stdout, done.stderr
    assert done.returncode == 1, err
    assert "cache: failed: " in out and "manifest.json" in out
    assert "snapshot: published" in out and settings.warehouse.snapshot_path.exists()
    assert "newsflow: maintenance step cache failed (above); the other steps ran\n" in err
    with database.connect(settings.warehouse, read_only=True) as conn:
        status, message = conn.execute("select status, message from runs where flow = 'maintain'").fetchall()[0]
    assert status == "failed" and message.startswith("MaintenanceFailed: maintenance step cache failed (")
    assert "Is a directory" in message and "the others ran: rollup, raw, checks, lake, compact, snapshot" in message


def test_an_unreadable_raw_archive_file_is_set_aside_and_its_pointers_dropped(demo_wh: Path, tmp_path: Path) -> None:
    """A raw-HTML archive file cut short on disk: the raw step moves it out of every `*.parquet` glob and drops its
    pointers (so `has_raw_html` tells the truth), the articles keep their text, and every other file still reads.
    A missing one is only reported: its pages may be on a folder not mounted."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_wh, db)
    settings = load_settings(warehouse=db, env={})
    raw = settings.warehouse.raw_dir
    shutil.copytree(demo_wh.with_name(f"{demo_wh.stem}.raw"), raw)
    victim = sorted(raw.rglob("*.parquet"))[0]
    rel = victim.relative_to(raw).as_posix()
    with database.connect(settings.warehouse, read_only=True) as conn:
        total, = conn.execute("select count(*) from raw_archive").fetchone()
        n, = conn.execute("select count(*) from raw_archive where archive_file = ?", [rel]).fetchone()
        articles, = conn.execute("select count(*) from articles").fetchone()
    assert n > 0
    # Missing (a folder not mounted, a copy of the warehouse without its archive): reported, nothing dropped.
    victim.rename(tmp_path / "away.parquet")
    did = upkeep.run_step("raw", settings, "m", False).did
    assert f"1 archive file not reachable ({rel}: missing): left as they are, pointers kept" in did
    with database.connect(settings.warehouse, read_only=True) as conn:
        assert conn.execute("select count(*) from raw_archive").fetchone()[0] == total
    (tmp_path / "away.parquet").rename(victim)
    with victim.open("r+b") as f:  # back, but cut short on disk: its pages are lost
        f.truncate(victim.stat().st_size // 2)
    assert f"1 archive file unreadable ({rel}: " in upkeep.run_step("raw", settings, "m", True).did
    assert victim.exists()  # a dry run moves nothing
    did = upkeep.run_step("raw", settings, "m", False).did
    assert f"1 archive file unreadable ({rel}: " in did and f"its {n} pages' pointers dropped" in did
    assert not victim.exists() and (raw / "damaged" / f"{rel}.damaged").exists()
    with database.connect(settings.warehouse, read_only=True) as conn:
        assert conn.execute("select count(*) from raw_archive").fetchone()[0] == total - n
        assert conn.execute("select count(*) from articles").fetchone()[0] == articles
        assert conn.execute("select count(*) from article_provenance where not has_raw_html").fetchone()[0] >= n
    left = sorted(raw.rglob("*.parquet"))  # every file a glob finds reads again (the demo's one file is gone)
    assert len(left) == len({p.relative_to(raw).as_posix() for p in left} - {rel})
    if left:
        with duckdb.connect() as conn:
            assert conn.execute(f"select count(*) from read_parquet('{raw}/**/*.parquet')").fetchone()[0] == total - n
    assert "unreadable" not in upkeep.run_step("raw", settings, "m", False).did
    # A pointer edited to name a file outside the archive folder: reported, the file never moved or read as ours.
    stranger = tmp_path / "someone-elses.parquet"
    stranger.write_bytes(b"not ours")
    with database.connect(settings.warehouse) as conn:
        conn.execute("insert into raw_archive (url, fetched_at, archive_file, bytes) "
                     "values ('https://edited.example/1', now(), '../someone-elses.parquet', 8)")
    did = upkeep.run_step("raw", settings, "m", False).did
    assert "not reachable (../someone-elses.parquet: outside the archive folder)" in did, did
    assert stranger.read_bytes() == b"not ours"


def test_maintain_refuses_while_a_run_holds_the_warehouse(demo_wh: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    with run_lock(demo_wh):
        done = subprocess.run([sys.executable, "-m", "flows.cli", "maintain", "--warehouse", str(demo_wh)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "holds" in done.stderr


def test_the_lookup_without_cache_runs_under_a_memory_cap_and_restores_the_limit(tmp_path: Path) -> None:
    from test_keycache import _probes

    from flows.warehouse import candidates

    wh = WarehouseSettings(path=tmp_path / "w.duckdb")
    _load(wh, _batches(seed=1, n_batches=3, per_batch=12))
    sigs = _probes(seed=7)
    with database.connect(wh) as conn:
        with_cache = candidates.stored_candidates(conn, sigs, SETTINGS)
    shutil.rmtree(tmp_path / "w.duckdb.keys")
    with database.connect(wh) as conn:
        limit = conn.execute("select current_setting('memory_limit')").fetchall()[0][0]
        assert candidates.stored_candidates(conn, sigs, SETTINGS) == with_cache
        assert conn.execute("select current_setting('memory_limit')").fetchall()[0][0] == limit
        with candidates.memory_capped(conn, True):
            capped = conn.execute("select current_setting('memory_limit')").fetchall()[0][0]
        assert capped != limit and conn.execute("select current_setting('memory_limit')").fetchall()[0][0] == limit
        # The pool itself is given back, not only the setting (DuckDB's RESET left it at the cap), and five caps
        # in a row leave the limit where it was (read back as rounded text, it must not shrink by each).
        needs_memory = "select count(distinct md5(range::varchar)) from range(400000)"
        for _ in range(5):
            with memorylimit.capped(conn, "8MB"), pytest.raises(duckdb.OutOfMemoryException):
                conn.execute(needs_memory).fetchall()
        assert conn.execute(needs_memory).fetchall() == [(400000,)]
        assert conn.execute("select current_setting('memory_limit')").fetchall()[0][0] == limit


def test_a_lookup_cache_rebuild_reads_under_its_cap_and_gives_the_limit_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = WarehouseSettings(path=tmp_path / "w.duckdb")
    _load(wh, _batches(seed=1, n_batches=3, per_batch=12))
    built = keycache.KeyCache.open(tmp_path / "w.duckdb.keys")
    assert built is not None
    shutil.rmtree(tmp_path / "w.duckdb.keys")
    with database.connect(wh) as conn:
        limit = conn.execute("select current_setting('memory_limit')").fetchall()[0][0]
        seen: list[str] = []
        append = keycache._append_rows

        def reading(c: duckdb.DuckDBPyConnection, *args: Any) -> None:  # the limit each kind's rows are read under
            seen.append(c.cursor().execute("select current_setting('memory_limit')").fetchall()[0][0])
            append(c, *args)

        monkeypatch.setattr(keycache, "_append_rows", reading)
        rebuilt = keycache.refresh(conn, tmp_path / "w.duckdb.keys")
        with duckdb.connect() as mem:  # how DuckDB shows REBUILD_MEMORY
            mem.execute("set memory_limit = $m", {"m": keycache.REBUILD_MEMORY})
            cap = mem.execute("select current_setting('memory_limit')").fetchall()[0][0]
        assert cap != limit and seen and all(v == cap for v in seen), seen
        assert conn.execute("select current_setting('memory_limit')").fetchall()[0][0] == limit
        assert conn.execute("select count(distinct md5(range::varchar)) from range(400000)").fetchall() == [(400000,)]
    assert rebuilt is not None and rebuilt.seq == built.seq
    seen.clear()  # a load's refresh reads its own few rows: not capped
    _load(wh, _batches(seed=2, n_batches=1, per_batch=3), start=10)
    assert seen and all(v == limit for v in seen), seen


def test_a_load_whose_capped_lookup_runs_out_of_memory_is_loaded_again_uncapped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_keycache import _doc, _probes

    from flows.warehouse import candidates
    from flows.warehouse.staging import Batch
    from flows.warehouse.writer import load_batch

    wh = WarehouseSettings(path=tmp_path / "w.duckdb")
    batches = _batches(seed=1, n_batches=4, per_batch=12)
    _load(wh, batches[:3])
    shutil.rmtree(tmp_path / "w.duckdb.keys")
    # A cap below the ~20 MB DuckDB needs to run the lookup at all: every capped lookup runs out of memory.
    monkeypatch.setattr(candidates, "FALLBACK_MB", 8)
    monkeypatch.setattr(candidates, "FALLBACK_MB_PER_THREAD", 4)
    with database.connect(wh) as conn:
        limit = conn.execute("select current_setting('memory_limit')").fetchall()[0][0]
        with pytest.raises(duckdb.OutOfMemoryException):
            candidates.stored_candidates(conn, _probes(seed=7), SETTINGS)
    copy = _doc("https://again.test/copy", batches[1][0].text)  # a copy of a stored story, under a new URL
    batch = Batch("b0003", "run")
    batch.add("docs", *batches[3], copy)
    with database.connect(wh) as conn:
        result = load_batch(conn, batch, SETTINGS)
        assert conn.execute("select current_setting('memory_limit')").fetchall()[0][0] == limit
        stored = {u for (u,) in conn.execute("select url from articles").fetchall()}
        copies = {u for (u,) in conn.execute("select url from duplicates").fetchall()}
        dup = conn.execute("select duplicate_of from duplicates where url = 'https://again.test/copy'").fetchall()
        original = conn.execute("select article_id from articles where url = $u",
                                {"u": batches[1][0].url}).fetchall()
    assert {d.url for d in batches[3] if "//s1." in d.url} <= stored
    assert {d.url for d in batches[3]} | {copy.url} <= stored | copies
    assert dup == original and result is not None


def test_newsflow_serve_schedules_maintain_from_the_config(tmp_path: Path) -> None:
    from flows.core.errors import ConfigError
    from flows.ops.deploy import deployments
    from flows.ops.schedule import check_cron

    settings = load_settings(env={"NEWSFLOW_MAINTENANCE__CRON": "5 4 * * 0"})
    (upkeep_dep,) = [d for d in deployments(settings) if d.flow_name == "maintain"]
    assert [s.schedule.cron for s in upkeep_dep.schedules] == ["5 4 * * 0"]
    assert upkeep_dep.concurrency_limit == 1  # one at a time, like every deployment that writes
    assert {"steps", "dry_run"} <= set(upkeep_dep._parameter_openapi_schema.properties)
    bad = load_settings(env={"NEWSFLOW_MAINTENANCE__CRON": "every night"})
    with pytest.raises(ConfigError, match=r"maintenance\.cron"):
        check_cron(bad, "newsflow.toml")

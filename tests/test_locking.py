"""Readers never lose a writer's data, writers never break a reader: real ingest runs while a second process
holds the warehouse file open (read-only and read-write), then a run with the file free loads everything.

Covers: flows.warehouse.database, flows.warehouse.store, flows.warehouse.runstate
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import FAST_ENV, demo_filled, run_ingest

from flows.core.settings import Settings
from flows.ops.localserver import LocalServer
from flows.warehouse import database, runstate, snapshot, staging, store

# A second process: opens the file, says "ready", then answers each SQL line on stdin with its first value.
HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
for line in sys.stdin:
    print(conn.execute(line).fetchone()[0], flush=True)
"""
LOCKED_ENV = {"NEWSFLOW_WAREHOUSE__LOCK_WAIT_SECONDS": "0.5"}
# Tables whose rows describe the stories, so they must match a clean run's (feed_fetches has a row per run).
TABLES = ("articles", "duplicates", "entries", "feeds", "entities", "article_entities", "page_fetches",
          "raw_archive", "lsh_buckets", "shingle_samples")


@contextmanager
def holding(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"  # blocks until it holds
        yield proc
    finally:
        proc.communicate("")


def ask(proc: subprocess.Popen[str], sql: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(sql + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


def url_paths(path: Path, base_of: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        urls = conn.execute("select url from articles union all select url from duplicates").fetchall()
    return {u.replace(base_of, "") for (u,) in urls}


def base_url(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as conn:
        url = conn.execute("select url from feeds limit 1").fetchone()[0]
    return url.split("/feeds/")[0]


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_run_against_a_held_warehouse_stages_everything_and_the_next_run_loads_it(
        mode: str, demo_server: LocalServer, demo_settings: Settings, prefect_harness: None,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    reference = demo_filled(tmp_path_factory)
    wh = demo_settings.warehouse
    assert database.ensure_ready(wh)  # the file exists, so a read-only holder can open it
    with holding(wh.path, mode) as holder:
        summary = run_ingest(demo_settings.config_path, wh.path, env=LOCKED_ENV)
        assert summary["status"] == "staged"
        assert summary["batches_staged"] == len(staging.pending(wh.staging_dir)) >= 3
        # The reader was never disturbed: it still answers, and nothing was written under it.
        assert ask(holder, "select count(*) from articles") == "0"
    assert counts(wh.path)["articles"] == 0
    assert not wh.snapshot_path.exists()  # nothing to publish while the data is only staged

    summary = run_ingest(demo_settings.config_path, wh.path, env=LOCKED_ENV)
    assert summary["status"] == "completed"
    assert staging.pending(wh.staging_dir) == []
    assert counts(wh.path) == counts(reference)
    with duckdb.connect(str(wh.path), read_only=True) as conn, duckdb.connect(str(reference), read_only=True) as ref:
        # The second run found every feed unchanged: one fetch row per feed per run, no new entries.
        assert conn.execute("select count(*) from feed_fetches").fetchone()[0] == \
            2 * ref.execute("select count(*) from feed_fetches").fetchone()[0]
    assert url_paths(wh.path, demo_server.base) == url_paths(reference, base_url(reference))
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        runs = dict(conn.execute("select status, count(*) from runs group by all").fetchall())
    assert runs == {"staged": 1, "completed": 1}
    assert wh.snapshot_path.exists()


def test_a_lock_released_mid_run_loads_the_backlog_in_the_same_run(demo_settings: Settings) -> None:
    """Batches staged while the file was held are loaded, in order, by the first load that gets the lock."""
    wh = demo_settings.warehouse.model_copy(update={"lock_wait_seconds": 0.2})
    settings = demo_settings.model_copy(update={"warehouse": wh})
    started = datetime(2000, 1, 1, tzinfo=UTC)
    assert database.ensure_ready(wh)
    with holding(wh.path, "ro"):
        # The head batch (runs row 'running', feed state) cannot load and stays staged.
        first = staging.Batch("20000101T000000-aaaaaaaa-0001", "run-a")
        first.add("runs", {"run_id": "run-a", "flow": "ingest", "started_at": started,
                           "status": "running"})
        assert store.store(settings, first) is None
    last = staging.Batch("20000101T000000-aaaaaaaa-0002", "run-a")
    last.add("runs", {"run_id": "run-a", "flow": "ingest", "started_at": started,
                      "status": "completed"})
    assert store.store(settings, last) is not None
    assert staging.pending(wh.staging_dir) == []
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        # Loaded oldest first, so the later state wins.
        assert conn.execute("select status from runs").fetchall() == [("completed",)]


def test_a_runs_batches_stay_in_the_log_until_its_last_batch_checkpoints(
        demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Loads without a checkpoint are committed (another process reads them from the log); the run's last
    batch folds the log into the file, so a file copied at rest holds everything."""
    wh = demo_settings.warehouse
    wal = wh.path.with_name(wh.path.name + ".wal")
    started = datetime(2000, 1, 1, tzinfo=UTC)
    assert database.ensure_ready(wh)
    first = staging.Batch("20000101T000000-aaaaaaaa-0001", "run-a")
    first.add("runs", {"run_id": "run-a", "flow": "ingest", "started_at": started, "status": "running"})
    assert store.store(demo_settings, first, checkpoint=False) is not None
    assert wal.exists() and wal.stat().st_size > 0
    with holding(wh.path, "ro") as reader:
        assert ask(reader, "select status from runs") == "running"
    last = staging.Batch("20000101T000000-aaaaaaaa-0002", "run-a")
    last.add("runs", {"run_id": "run-a", "flow": "ingest", "started_at": started, "status": "completed"})
    assert store.store(demo_settings, last) is not None
    assert not wal.exists()
    copy = tmp_path_factory.mktemp("copy") / "copy.duckdb"
    shutil.copyfile(wh.path, copy)
    with duckdb.connect(str(copy), read_only=True) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
    # A whole ingest run (several batches) leaves no log either.
    filled = demo_filled(tmp_path_factory)
    assert not filled.with_name(filled.name + ".wal").exists()


def test_newsflow_ingest_under_a_held_lock_exits_cleanly_with_its_data_staged(
        demo_server: LocalServer, demo_settings: Settings, prefect_harness: None) -> None:
    from prefect.settings import PREFECT_API_URL

    wh = demo_settings.warehouse
    assert database.ensure_ready(wh)
    env = {**os.environ, **FAST_ENV, **LOCKED_ENV, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    cli = [str(Path(sys.executable).with_name("newsflow")), "ingest", "--config", str(demo_settings.config_path),
           "--warehouse", str(wh.path)]
    with holding(wh.path, "rw"):
        done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert ": staged" in done.stdout
    assert "the warehouse was locked: batches are staged and the next run loads them" in done.stdout
    assert len(staging.pending(wh.staging_dir)) >= 3


def test_a_runs_start_marks_dead_runs_and_reads_states_and_reads_the_snapshot_when_the_file_is_held(
        demo_settings: Settings) -> None:
    """runstate.start_run does ensure_ready, mark_abandoned and the two reads over one connection: the same
    outcome as the four steps. Held past the lock wait, it marks nothing and reads the published snapshot."""
    wh = demo_settings.warehouse.model_copy(update={"lock_wait_seconds": 0.2})
    settings = demo_settings.model_copy(update={"warehouse": wh})
    started = datetime(2000, 1, 1, tzinfo=UTC)
    fresh = runstate.start_run(settings, "run-b", mark_dead=True)
    assert fresh.ready and fresh.feed_states == {} and fresh.seed_hashes == {}
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert database.schema_version(conn) == len(database.migrations())  # created and migrated
    batch = staging.Batch("20000101T000000-aaaaaaaa-0001", "run-a")
    batch.add("runs", {"run_id": "run-a", "flow": "ingest", "started_at": started, "status": "running"})
    batch.add("feeds", {"feed": "f", "url": "http://f/", "configured_url": "http://f/", "etag": '"v1"',
                        "consecutive_failures": 0, "disabled": False,
                        "updated_at": started})
    assert store.store(settings, batch) is not None
    assert snapshot.publish_snapshot(wh) is not None

    with holding(wh.path, "rw"):
        held = runstate.start_run(settings, "run-b", mark_dead=True)
    assert not held.ready
    assert held.feed_states["f"]["etag"] == '"v1"'  # from the snapshot
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert conn.execute("select status from runs").fetchall() == [("running",)]  # nothing marked

    kept = runstate.start_run(settings, "run-b", mark_dead=False)
    assert kept.ready and kept.feed_states["f"]["etag"] == '"v1"'
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert conn.execute("select status from runs").fetchall() == [("running",)]

    marked = runstate.start_run(settings, "run-b", mark_dead=True)
    assert marked.ready
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert conn.execute("select status from runs").fetchall() == [("abandoned",)]


def test_status_tells_a_running_row_whose_process_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A `running` row is alive only while its run lock is held: the warehouse's for an ingest (the newest such
    row), its shard's for a stage-only run. `status` reads the locks without taking or creating them."""
    from flows.cli import main
    from flows.core.settings import WarehouseSettings
    from flows.warehouse.runlock import lock_path, run_lock

    db = tmp_path / "wh.duckdb"
    assert database.ensure_ready(WarehouseSettings(path=db, staging_dir=tmp_path / "staging"))
    with duckdb.connect(str(db)) as conn:
        conn.execute("""insert into runs (run_id, flow, started_at, status, parameters) values
            ('aaaaaaaa-shard', 'ingest', now() - interval 2 minute, 'running', '{"shard": "2/4", "stage_only": true}'),
            ('bbbbbbbb-plain', 'ingest', now() - interval 1 minute, 'running', '{"feeds": null}')""")

    def shown() -> dict[str, str]:
        before = sorted(tmp_path.rglob("*"))
        assert main(["status", "--warehouse", str(db)]) == 0
        assert sorted(tmp_path.rglob("*")) == before  # no lock file, no folder made
        out = capsys.readouterr().out
        return {run: line.split("│")[4].strip() for line in out.splitlines()
                for run in ("aaaaaaaa", "bbbbbbbb") if f"│ {run} " in line}

    assert shown() == {"aaaaaaaa": "dead (process gone)", "bbbbbbbb": "dead (process gone)"}
    with run_lock(db, "shard-2-of-4"), run_lock(db):
        assert shown() == {"aaaaaaaa": "running", "bbbbbbbb": "running"}
    assert lock_path(db, "shard-2-of-4").exists()
    with run_lock(db, "shard-1-of-4"):  # another shard's lock says nothing about shard 2
        assert shown()["aaaaaaaa"] == "dead (process gone)"


def test_a_folder_where_the_run_lock_belongs_is_one_error_saying_what_to_do(tmp_path: Path) -> None:
    """Every run and maintenance takes the lock first: a folder in its place (found by a damage sweep) stopped them
    all with a bare `[Errno 21] Is a directory`; now one error names the path and the remedy."""
    from flows.warehouse.runlock import lock_path, run_lock

    db = tmp_path / "wh.duckdb"
    lock_path(db).mkdir(parents=True)
    with pytest.raises(database.WarehouseError, match="a folder where newsflow keeps its run lock") as caught:
        with run_lock(db):
            pass
    assert str(lock_path(db)) in str(caught.value) and "remove it" in str(caught.value)
    lock_path(db).rmdir()
    with run_lock(db) as mine:  # removed: the next run makes the lock again
        assert mine

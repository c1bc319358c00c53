"""Warehouse checks: each holds on a demo-filled warehouse and returns the offending row once its invariant is
broken by a direct SQL write to a real DuckDB file; `newsflow check` exit codes; checks stored by an ingest.

Covers: flows.warehouse.checks, flows.run.alerts, flows.run.artifacts
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import copy_demo, run_ingest

from flows.cli import main
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.core.stats import RunStats
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.run.artifacts import markdown
from flows.warehouse import checks, database, staging, writer
from flows.warehouse.runlock import run_lock

CHECKS = {"untagged_articles", "orphan_duplicates", "orphan_article_entities", "url_stored_and_duplicate",
          "feeds_without_state", "stale_running_runs", "stale_staged_batches", "shingle_samples_mismatch",
          "dedup_index_stale", "quarantined_batches", "aggregates_match",
          "stories_consistent", "duplicate_article_entities"}

# A second process that holds the warehouse file open until its stdin closes.
HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def db(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, prefect_harness: None) -> Path:
    """A copy of the session's demo-filled warehouse (built by a real ingest, which ran the checks too)."""
    return copy_demo(tmp_path_factory, tmp_path / "wh" / "demo.duckdb")


def run_all(path: Path, **kwargs: object) -> dict[str, checks.CheckResult]:
    with duckdb.connect(str(path), read_only=True) as conn:
        results = checks.run_checks(conn, staging_dir=path.with_name(path.stem + ".staging"), **kwargs)
    return {r.name: r for r in results}


def execute(path: Path, *statements: str) -> None:
    with duckdb.connect(str(path)) as conn:
        for sql in statements:
            conn.execute(sql)


@contextmanager
def holding(path: Path) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"  # blocks until it holds
        yield
    finally:
        proc.communicate("")


def test_every_check_holds_on_the_demo_warehouse(db: Path) -> None:
    results = run_all(db)
    assert set(results) == CHECKS == {p.stem for p in checks.check_files()}
    assert {name: r.offending_rows for name, r in results.items()} == dict.fromkeys(CHECKS, 0)
    assert not any(r.error for r in results.values())


# The tagged article of the oldest day. A second row of a link of an article on the warehouse's last 2 days also
# changes the mentions aggregates_match recomputes there (rightly: it counts the links), and article ids hash URLs
# that carry the demo server's port, so `min(article_id)` fell on such a day in some sessions.
_OLDEST_LINKED = ("select ae.article_id from article_entities ae join articles a using (article_id) "
                  "order by coalesce(a.published_at, a.fetched_at, a.loaded_at), ae.article_id limit 1")

# check -> statements that break its invariant, and a column/value of the offending row they create.
BREAKS = {
    "untagged_articles": (
        ["update articles set ner_pipeline = null where url = (select min(url) from articles where not is_seed)"],
        "url", "select min(url) from articles where not is_seed"),
    "orphan_duplicates": (
        ["insert into duplicates (url, duplicate_of, method, criterion, similarity, seen_at, run_id) "
         "values ('http://127.0.0.1/copy-of-nothing', 42, 'exact', 'text_hash', 1.0, now(), 'r')"],
        "url", "select 'http://127.0.0.1/copy-of-nothing'"),
    "orphan_article_entities": (
        ["insert into article_entities (article_id, entity_id, mentions) "
         "values (42, (select min(entity_id) from entities), 1)"],
        "article_id", "select 42"),
    "duplicate_article_entities": (
        [f"insert into article_entities select * from article_entities where article_id = ({_OLDEST_LINKED}) "
         f"and entity_id = (select min(entity_id) from article_entities where article_id = ({_OLDEST_LINKED}))"],
        "article_id", _OLDEST_LINKED),
    "url_stored_and_duplicate": (
        ["insert into duplicates (url, duplicate_of, method, criterion, similarity, seen_at, run_id) "
         "select url, (select min(article_id) from articles where is_seed), 'near', 'jaccard', 0.9, now(), 'r' "
         "from articles where not is_seed order by url limit 1"],
        "url", "select min(url) from articles where not is_seed"),
    "feeds_without_state": (
        ["insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at) "
         "values ('r:Nowhere', 'r', 'Nowhere', 'http://127.0.0.1/nowhere.xml', 'failed', now()), "
         "('r:Backed Off', 'r', 'Backed Off', 'http://127.0.0.1/off.xml', 'skipped', now())"],
        "feed", "select 'Nowhere'"),
    "stale_running_runs": (
        ["insert into runs (run_id, flow, started_at, status) "
         "values ('dead-run', 'ingest', now() - interval 2 hour, 'running')"],
        "run_id", "select 'dead-run'"),
    "aggregates_match": (
        ["update daily_feed_articles set articles = articles + 1 where day = (select max(day) from "
         "daily_feed_articles) and feed = (select min(feed) from daily_feed_articles where day = "
         "(select max(day) from daily_feed_articles))"],
        "aggregate", "select 'daily_feed_articles'"),
    "shingle_samples_mismatch": (
        ["delete from shingle_samples where article_id = "
         "(select min(article_id) from articles where n_samples > 0 and not is_seed)"],
        "article_id", "select min(article_id) from articles where n_samples > 0 and not is_seed"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_invariant_returns_its_offending_row(db: Path, name: str) -> None:
    statements, column, expected_sql = BREAKS[name]
    with duckdb.connect(str(db), read_only=True) as conn:
        expected = conn.execute(expected_sql).fetchone()[0]
    execute(db, *statements)
    results = run_all(db)
    assert results[name].offending_rows == 1
    assert results[name].sample[0][column] == json.loads(json.dumps(expected, default=str))
    # Each break trips its own check only.
    assert {n for n, r in results.items() if r.failed} == {name}


def test_a_dedup_index_built_with_other_settings_is_reported(
        db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_all(db, dedup=DedupSettings())["dedup_index_stale"].offending_rows == 0
    assert run_all(db)["dedup_index_stale"].skipped  # without the current settings it cannot tell
    stale = run_all(db, dedup=DedupSettings(sample_mod=8))["dedup_index_stale"]
    assert stale.offending_rows == 1 and json.loads(stale.sample[0]["params"])["sample_mod"] == 4
    assert json.loads(stale.sample[0]["current_params"])["sample_mod"] == 8
    # Thresholds act on the lookup only: the stored index stays valid.
    assert run_all(db, dedup=DedupSettings(jaccard_threshold=0.5))["dedup_index_stale"].offending_rows == 0
    monkeypatch.setenv("NEWSFLOW_DEDUP__SHINGLE_SIZE", "4")
    code, out = check_cli(db, capsys)
    assert code == 1 and "FAIL  dedup_index_stale" in out


def test_an_article_that_says_why_it_was_not_tagged_passes(db: Path) -> None:
    execute(db, "update articles set ner_pipeline = null, ner_skip_reason = 'no pipeline for language xx' "
                "where url = (select min(url) from articles where not is_seed)")
    assert run_all(db)["untagged_articles"].offending_rows == 0


def test_live_runs_are_not_stale(db: Path) -> None:
    now = datetime.now(UTC)
    execute(db, "insert into runs (run_id, flow, started_at, status) values "
                "('alive', 'ingest', now() - interval 1 hour, 'running'), "
                "('just-started', 'ingest', now() + interval 1 minute, 'running')")
    result = run_all(db, alive_runs=["alive"], started_before=now)["stale_running_runs"]
    assert result.offending_rows == 0
    result = run_all(db, started_before=now)["stale_running_runs"]
    assert [r["run_id"] for r in result.sample] == ["alive"]


def test_a_batch_staged_over_a_day_ago_is_reported(db: Path) -> None:
    staging_dir = db.with_name(db.stem + ".staging")
    old = staging.write(staging.Batch("20240101T000000-aaaaaaaa-0001", "old-run"), staging_dir, durable=False)
    staging.write(staging.Batch("20240101T000000-bbbbbbbb-0001", "new-run"), staging_dir, durable=False)
    two_days_ago = time.time() - 2 * 86400
    os.utime(old / "run_id", (two_days_ago, two_days_ago))
    result = run_all(db)["stale_staged_batches"]
    assert result.offending_rows == 1
    assert result.sample[0]["batch_id"] == old.name and result.sample[0]["run_id"] == "old-run"


def test_a_batch_in_quarantine_is_reported_with_the_reason_recorded(db: Path) -> None:
    """quarantined_batches: every folder in <staging_dir>/quarantine/, with the loader's row when there is one."""
    staging_dir = db.with_name(db.stem + ".staging")
    moved = staging.quarantine(staging.write(staging.Batch("20240101T000000-aaaaaaaa-0001", "old-run"),
                                             staging_dir, durable=False))
    (staging_dir / staging.QUARANTINE / "by-hand").mkdir()
    execute(db, f"insert into staged_quarantine values ('{moved.name}', '{moved}', 'docs.parquet: truncated', "
                "now(), 'load-1')")
    result = run_all(db)["quarantined_batches"]
    assert result.offending_rows == 2
    assert [(r["batch_id"], r["reason"]) for r in result.sample] == [
        (moved.name, "docs.parquet: truncated"), ("by-hand", "no staged_quarantine row (moved by hand?)")]


def test_a_check_that_cannot_run_is_a_recorded_failure(db: Path) -> None:
    with duckdb.connect(str(db)) as conn:
        bad = checks.run_one(conn, "bad_check", "select * from no_such_table", {})
        ok = checks.run_one(conn, "fine", "-- a comment\nselect 1 as x where $flag;", {"flag": False, "extra": 1})
        checks.store_results(conn, "check:test", [bad, ok])
        stored = dict(conn.execute("select check_name, sample from check_results where run_id = 'check:test'")
                      .fetchall())
    assert bad.failed and bad.offending_rows == -1 and "no_such_table" in bad.error
    assert not ok.failed and ok.offending_rows == 0
    assert "no_such_table" in json.loads(stored["bad_check"])["error"]
    assert "| bad_check | **error** |" in markdown("r", RunStats(), [], [], 3, checks.CheckRun("r", [bad, ok]))


def _api(path: str, body: dict[str, object]) -> list[dict[str, object]]:
    """POST to the harness's Prefect API once the logs and events this process queued are delivered."""
    import httpx
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL

    APILogWorker.drain_all()
    EventsWorker.drain_all()
    r = httpx.post(f"{PREFECT_API_URL.value()}{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def api_messages(flow_run_id: str) -> list[str]:
    logs = _api("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}, "level": {"ge_": 40}}})
    return [str(log["message"]) for log in logs]


def api_events(name: str) -> set[tuple[str, object]]:
    found = _api("/events/filter", {"filter": {"event": {"name": [name]},
                                               "occurred": {"since": "2000-01-01T00:00:00Z",
                                                            "until": datetime.now(UTC).isoformat()}}})
    return {(e["resource"]["prefect.resource.id"], e["payload"]["offending_rows"]) for e in found["events"]}


def check_cli(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--warehouse", str(db)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_newsflow_check_exit_codes_and_stored_results(db: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = check_cli(db, capsys)
    assert code == 0, out
    assert f"{len(CHECKS)} checks, 0 failing" in out

    execute(db, BREAKS["orphan_duplicates"][0][0])
    code, out = check_cli(db, capsys)
    assert code == 1, out
    assert "FAIL  orphan_duplicates" in out and "copy-of-nothing" in out
    with duckdb.connect(str(db), read_only=True) as conn:
        stored = conn.execute("select run_id, check_name, offending_rows from check_results "
                              "where run_id like 'check:%' and offending_rows > 0").fetchall()
    assert [(name, n) for _, name, n in stored] == [("orphan_duplicates", 1)]

    assert check_cli(db.with_name("missing.duckdb"), capsys)[0] == 2
    monkeypatch.setenv("NEWSFLOW_WAREHOUSE__LOCK_WAIT_SECONDS", "0.3")
    with holding(db):
        code, out = check_cli(db, capsys)
    assert code == 2 and "locked" in out


def test_newsflow_check_under_a_held_run_lock_takes_the_newest_running_run_as_alive(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    execute(db, "insert into runs (run_id, flow, started_at, status) values "
                "('dead-run', 'ingest', now() - interval 2 hour, 'running'), "
                "('live-run', 'ingest', now() - interval 1 minute, 'running')")
    with run_lock(db) as mine:
        assert mine
        code, out = check_cli(db, capsys)
    assert code == 1
    assert "live-run is taken as alive" in out and "dead-run" in out
    # With the lock free, no run is alive.
    code, out = check_cli(db, capsys)
    assert code == 1 and "live-run" in out


def test_an_ingest_stores_its_checks_and_status_shows_them(
        db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with duckdb.connect(str(db), read_only=True) as conn:
        # The demo ingest that built this warehouse ran the checks at its end.
        (run_id, failed), = conn.execute("select run_id, checks_failed from runs where flow = 'ingest'").fetchall()
        stored = conn.execute("select check_name, offending_rows from check_results where run_id = ?",
                              [run_id]).fetchall()
    assert failed == 0
    assert dict(stored) == dict.fromkeys(CHECKS, 0)

    # Written as a load writes (the next load sequence number), so the run's incremental pass reads it.
    execute(db, "update load_sequence set seq = seq + 1",
            BREAKS["orphan_duplicates"][0][0].replace("seen_at, run_id)", "seen_at, run_id, load_seq)")
            .replace("now(), 'r')", "now(), 'r', (select seq from load_sequence))"))
    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, db, tmp_path)
        dry = run_ingest(config, db, dry_run=True, max_articles_per_feed=0)
        summary = run_ingest(config, db, max_articles_per_feed=0)
    assert dry["checks_failed"] is None
    assert summary["status"] == "completed" and summary["checks_failed"] == 1
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select checks_failed from runs where run_id = ?", [summary["run_id"]]).fetchone() == (1,)
        rows = dict(conn.execute("select check_name, offending_rows from check_results where run_id = ?",
                                 [summary["run_id"]]).fetchall())
        assert conn.execute("select count(*) from check_results where run_id = ?", [dry["run_id"]]).fetchone() == (0,)
    assert rows == {**dict.fromkeys(CHECKS, 0), "orphan_duplicates": 1}

    # The alert path: an ERROR log line in the run and a `newsflow.check.failed` event, in the Prefect API.
    assert any("warehouse check 'orphan_duplicates' failed" in m for m in api_messages(summary["run_id"]))
    deadline = time.monotonic() + 30  # the server persists events in batches, a few seconds after they arrive
    while ("newsflow.check.orphan_duplicates", 1) not in api_events("newsflow.check.failed"):
        assert time.monotonic() < deadline, "no newsflow.check.failed event reached the Prefect API"
        time.sleep(0.25)  # polling interval, not synchronisation: the loop waits for the event itself

    assert main(["status", "--warehouse", str(db)]) == 0
    out = capsys.readouterr().out
    assert "checks_failed" in out and "orphan_duplicates" in out and "Warehouse checks" in out


def test_an_ingest_with_other_dedup_settings_warns_that_the_index_is_stale(db: Path, tmp_path: Path) -> None:
    with LocalServer(DEMO_DATA) as server:
        summary = run_ingest(demo_config(server, db, tmp_path), db, env={"NEWSFLOW_DEDUP__SAMPLE_MOD": "8"},
                             max_articles_per_feed=0)
    assert summary["status"] == "completed" and summary["checks_failed"] == 1
    with duckdb.connect(str(db), read_only=True) as conn:
        failed = conn.execute("select check_name from check_results where run_id = ? and offending_rows > 0",
                              [summary["run_id"]]).fetchall()
        # The loader never overwrites the record of an index built another way.
        assert conn.execute("select params->>'sample_mod' from dedup_index").fetchall() == [("4",)]
    assert failed == [("dedup_index_stale",)]
    logs = _api("/logs/filter", {"logs": {"flow_run_id": {"any_": [summary["run_id"]]}, "level": {"ge_": 30}}})
    assert any("reprocess --step dedup" in str(log["message"]) for log in logs)


def test_checks_are_skipped_not_failed_when_the_warehouse_is_locked_at_the_end(db: Path, tmp_path: Path) -> None:
    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, db, tmp_path)
        with holding(db):
            summary = run_ingest(config, db, env={"NEWSFLOW_WAREHOUSE__LOCK_WAIT_SECONDS": "0.3"},
                                 max_articles_per_feed=0)
    assert summary["status"] == "staged" and summary["checks_failed"] is None
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("select count(*) from check_results where run_id = ?",
                            [summary["run_id"]]).fetchone() == (0,)


# ---------------------------------------------------------------- incremental checks (issue 23)

SCOPED = {"untagged_articles", "orphan_duplicates", "orphan_article_entities", "url_stored_and_duplicate",
          "shingle_samples_mismatch", "aggregates_match", "feeds_without_state", "duplicate_article_entities"}


def load_rows(path: Path, *statements: str) -> int:
    """Write rows as a load does: in one transaction that takes the next load sequence number (`$seq`)."""
    with duckdb.connect(str(path)) as conn, database.transaction(conn):
        seq = writer.next_load_seq(conn)
        for sql in statements:
            conn.execute(sql, {"seq": seq} if "$seq" in sql else None)
    return seq


def check_pass(path: Path, *, full: bool = False, conn: duckdb.DuckDBPyConnection | None = None
               ) -> dict[str, checks.CheckResult]:
    settings = WarehouseSettings(path=path, staging_dir=path.with_name(path.stem + ".staging"))
    done = checks.run_and_store(settings, checks.new_check_id(), alive_runs=[], full=full, conn=conn)
    return {r.name: r for r in done.results}


def orphan_copy(url: str) -> str:
    return ("insert into duplicates (url, duplicate_of, method, criterion, similarity, seen_at, run_id, load_seq) "
            f"values ('{url}', 42, 'exact', 'text_hash', 1.0, now(), 'r', $seq)")


def test_rows_a_load_writes_carry_its_load_sequence_number(db: Path) -> None:
    with duckdb.connect(str(db), read_only=True) as conn:
        (counter,) = conn.execute("select seq from load_sequence").fetchone()
        for table in ("articles", "duplicates", "article_entities", "feed_fetches"):
            low, high, unstamped = conn.execute(
                f"select min(load_seq), max(load_seq), count(*) filter (where load_seq = 0) from {table}").fetchone()
            assert unstamped == 0 and 1 <= low <= high <= counter, table


def test_an_incremental_pass_reads_what_was_loaded_since_and_a_full_pass_reads_everything(db: Path) -> None:
    first = check_pass(db)
    assert not any(r.failed for r in first.values())
    mark = first["orphan_duplicates"].until_seq
    assert mark is not None and all(first[n].until_seq == mark for n in SCOPED)
    # Written before the watermark (a row of load `mark`, the last one checked): the next incremental pass does not
    # read it...
    execute(db, "insert into article_entities (article_id, entity_id, mentions, load_seq) "
                f"values (42, (select min(entity_id) from entities), 1, {mark})")
    # ...while a copy of nothing loaded since is found by it.
    seq = load_rows(db, orphan_copy("http://127.0.0.1/new-copy-of-nothing"))
    assert seq == mark + 1
    second = check_pass(db)
    assert {n for n, r in second.items() if r.failed} == {"orphan_duplicates"}
    found = second["orphan_duplicates"]
    assert (found.scope, found.since_seq, found.until_seq) == ("incremental", mark, seq)
    assert found.sample[0]["url"] == "http://127.0.0.1/new-copy-of-nothing"
    full = check_pass(db, full=True)
    assert {n for n, r in full.items() if r.failed} == {"orphan_duplicates", "orphan_article_entities"}
    assert full["orphan_article_entities"].sample[0]["article_id"] == 42
    assert (full["orphan_article_entities"].scope, full["orphan_article_entities"].since_seq) == ("full", -1)
    # A failing check keeps its watermark: the next incremental pass reports the copy again; the passing ones moved.
    third = check_pass(db)
    assert third["orphan_duplicates"].offending_rows == 1 and third["orphan_duplicates"].since_seq == mark
    assert third["untagged_articles"].since_seq == seq
    with duckdb.connect(str(db), read_only=True) as conn:
        stored = conn.execute("select scope, since_seq, until_seq from check_results "
                              "where check_name = 'orphan_duplicates' order by checked_at").fetchall()
        marks = dict(conn.execute("select check_name, seq from check_watermarks").fetchall())
    assert stored[-3:] == [("incremental", mark, seq), ("full", -1, seq), ("incremental", mark, seq)]
    assert marks == {**dict.fromkeys(SCOPED, seq), "orphan_duplicates": mark}


def test_a_fetch_without_state_is_found_by_the_incremental_pass_after_its_load_and_an_older_one_by_a_full_pass(
        db: Path) -> None:
    """feeds_without_state reads the fetches loaded since it last held (migration 0015): one written since the
    last pass is found by the next incremental pass; one written before it (load number 0, as every fetch stored
    before the migration) only by a full pass."""
    mark = check_pass(db)["feeds_without_state"].until_seq
    assert mark is not None
    fetch = ("insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at, load_seq) values "
             "('{run}:{feed}', '{run}', '{feed}', 'http://127.0.0.1/x.xml', 'failed', now(), {seq})")
    execute(db, fetch.format(run="old", feed="Stateless before", seq=0))
    seq = load_rows(db, fetch.format(run="new", feed="Stateless since", seq="$seq"))
    incremental = check_pass(db)["feeds_without_state"]
    assert (incremental.scope, incremental.since_seq, incremental.until_seq) == ("incremental", mark, seq)
    assert [r["feed"] for r in incremental.sample] == ["Stateless since"]
    full = check_pass(db, full=True)["feeds_without_state"]
    assert [r["feed"] for r in full.sample] == ["Stateless before", "Stateless since"]


def test_a_second_link_of_one_key_is_found_by_the_incremental_pass_after_its_load_and_an_older_one_by_a_full_pass(
        db: Path) -> None:
    """article_entities declares no key (migration 0016). Two rows of one article and entity written by the load
    just checked are found by the next incremental pass; a second row of a link stored long ago (load 0) only by a
    full pass."""
    mark = check_pass(db)["duplicate_article_entities"].until_seq
    assert mark is not None
    with duckdb.connect(str(db), read_only=True) as conn:
        old, entity = conn.execute(
            "select article_id, entity_id from article_entities order by article_id, entity_id limit 1").fetchone()
    execute(db, f"insert into article_entities values ({old}, {entity}, 1, 0)")
    link = f"insert into article_entities values (777, {entity}, 1, $seq)"
    seq = load_rows(db, link, link)
    incremental = check_pass(db)["duplicate_article_entities"]
    assert (incremental.scope, incremental.since_seq, incremental.until_seq) == ("incremental", mark, seq)
    assert [(r["article_id"], r["rows"]) for r in incremental.sample] == [(777, 2)]
    full = check_pass(db, full=True)["duplicate_article_entities"]
    assert sorted((r["article_id"], r["rows"]) for r in full.sample) == sorted([(777, 2), (old, 2)])


def test_the_watermark_never_steps_over_a_rolled_back_or_uncommitted_load(db: Path) -> None:
    mark = check_pass(db)["orphan_duplicates"].until_seq
    assert mark is not None
    with duckdb.connect(str(db)) as conn:
        # A load that fails rolls its number back with its rows: the pass after it reads up to `mark`.
        conn.execute("begin transaction")
        assert writer.next_load_seq(conn) == mark + 1
        conn.execute(orphan_copy("http://127.0.0.1/rolled-back"), {"seq": mark + 1})
        conn.execute("rollback")
        assert check_pass(db, conn=conn.cursor())["orphan_duplicates"].until_seq == mark
        # A load still open while a pass runs (another connection to the file): the pass cannot see its number,
        # so the watermark stays below it, and the pass after its commit reads its rows.
        conn.execute("begin transaction")
        seq = writer.next_load_seq(conn)
        conn.execute(orphan_copy("http://127.0.0.1/committed-late"), {"seq": seq})
        during = check_pass(db, conn=conn.cursor())["orphan_duplicates"]
        conn.execute("commit")
        after = check_pass(db, conn=conn.cursor())["orphan_duplicates"]
    assert seq == mark + 1 and during.offending_rows == 0 and during.until_seq == mark
    assert after.offending_rows == 1 and after.sample[0]["url"] == "http://127.0.0.1/committed-late"


@pytest.mark.parametrize("seed", range(3))
def test_incremental_passes_over_consecutive_loads_flag_what_one_full_pass_flags(db: Path, seed: int) -> None:
    """Property: whatever mix of good and bad rows the loads bring, the violations the incremental pass after each
    load reports are, together, those of one full pass at the end (at most 4 per check, all in the samples)."""
    rng = random.Random(seed)
    flagged: dict[str, set[object]] = {n: set() for n in ("orphan_duplicates", "orphan_article_entities",
                                                           "untagged_articles", "url_stored_and_duplicate")}
    key = {"orphan_duplicates": "url", "orphan_article_entities": "article_id", "untagged_articles": "url",
           "url_stored_and_duplicate": "url"}
    for load in range(4):
        statements = []
        for i in range(rng.randint(0, 3)):  # good rows: tagged articles with their (empty) index
            statements.append("insert into articles (article_id, url, text, text_hash, body_source, ner_pipeline, "
                              "n_shingles, n_samples, run_id, loaded_at, load_seq) values "
                              f"({10_000 + load * 10 + i}, 'http://127.0.0.1/ok/{load}/{i}', 't', 'h', 'extracted', "
                              "'p', 0, 0, 'r', now(), $seq)")
        if rng.random() < 0.5:
            statements.append(orphan_copy(f"http://127.0.0.1/orphan/{load}"))
        if rng.random() < 0.5:
            statements.append("insert into article_entities (article_id, entity_id, mentions, load_seq) values "
                              f"({900 + load}, (select min(entity_id) from entities), 1, $seq)")
        if rng.random() < 0.5:  # a copy recorded for a URL stored as an article by an earlier load
            statements.append("insert into duplicates (url, duplicate_of, method, criterion, similarity, seen_at, "
                              "run_id, load_seq) select url, article_id, 'near', 'jaccard', 0.9, now(), 'r', $seq "
                              f"from articles where not is_seed order by url limit 1 offset {load}")
        if rng.random() < 0.5:
            statements.append("insert into articles (article_id, url, text, text_hash, body_source, n_shingles, "
                              f"n_samples, run_id, loaded_at, load_seq) values ({20_000 + load}, "
                              f"'http://127.0.0.1/untagged/{load}', 't', 'h', 'extracted', 0, 0, 'r', now(), $seq)")
        if statements:
            load_rows(db, *statements)
        results = check_pass(db)
        for name in flagged:
            assert results[name].offending_rows == len(results[name].sample)
            flagged[name] |= {row[key[name]] for row in results[name].sample}
    full = check_pass(db, full=True)
    assert {n: {row[key[n]] for row in full[n].sample} for n in flagged} == flagged
    assert all(full[n].offending_rows == len(flagged[n]) for n in flagged)
    assert not any(r.failed for n, r in full.items() if n not in flagged)


# The plain formulations of the rewritten checks (every row, one join each): what a check must return.
REFERENCE = {
    "orphan_article_entities": """
        select ae.article_id, ae.entity_id,
               not exists (select 1 from articles a where a.article_id = ae.article_id) as missing_article,
               not exists (select 1 from entities e where e.entity_id = ae.entity_id) as missing_entity
        from article_entities ae
        where not exists (select 1 from articles a where a.article_id = ae.article_id)
           or not exists (select 1 from entities e where e.entity_id = ae.entity_id)
        order by 1, 2""",
    "url_stored_and_duplicate": """
        select a.url, a.article_id, d.duplicate_of, d.method
        from articles a join duplicates d on d.url = a.url
        order by 1""",
    "feeds_without_state": """
        select ff.feed, count(*) as fetches, max(ff.fetched_at) as last_fetched_at
        from feed_fetches ff
        where ff.outcome <> 'skipped' and not exists (select 1 from feeds f where f.feed = ff.feed)
        group by ff.feed
        order by ff.feed""",
}


def test_rewritten_checks_return_what_their_plain_formulation_returns(db: Path) -> None:
    """The checks written for the planner (new rows sized by a range of load numbers, fetched feeds grouped
    first) give, in a full pass, the rows of a plain join over every row, and an incremental pass after the loads
    that wrote them finds each one."""
    mark = check_pass(db)["orphan_article_entities"].until_seq
    assert mark is not None
    load_rows(db, "insert into feed_fetches (fetch_id, run_id, feed, url, outcome, fetched_at, load_seq) values "
                  "('r1:Gone', 'r1', 'Gone', 'http://127.0.0.1/gone.xml', 'failed', now() - interval 1 day, $seq), "
                  "('r2:Gone', 'r2', 'Gone', 'http://127.0.0.1/gone.xml', 'ok', now(), $seq), "
                  "('r2:Also gone', 'r2', 'Also gone', 'http://127.0.0.1/also.xml', 'not_modified', now(), $seq)")
    load_rows(db, "insert into article_entities (article_id, entity_id, mentions, load_seq) values "
                  "(42, (select min(entity_id) from entities), 1, $seq), "
                  "((select min(article_id) from articles), -7, 1, $seq)")
    load_rows(db, "insert into duplicates (url, duplicate_of, method, criterion, similarity, seen_at, run_id, "
                  "load_seq) select url, article_id, 'near', 'jaccard', 0.9, now(), 'r', $seq "
                  "from articles where not is_seed order by url limit 2")
    incremental = check_pass(db)
    full = check_pass(db, full=True)
    with duckdb.connect(str(db), read_only=True) as conn:
        for name, sql in REFERENCE.items():
            cur = conn.execute(sql)
            cols = [d[0] for d in cur.description]
            expected = checks._sample(cols, cur.fetchall())
            assert len(expected) in (2, 3), name
            assert full[name].sample == expected, name
            assert incremental[name].offending_rows == len(expected), name
            assert incremental[name].sample == expected, name
    assert incremental["orphan_article_entities"].since_seq == mark


def test_aggregates_are_compared_after_a_load_and_not_again_in_a_quiet_pass(db: Path) -> None:
    """aggregates_match is scoped as a whole: a pass with no load since it last held compares nothing (a quiet run
    pays nothing for it); one after a load compares the last two days, and so does every full pass."""
    assert not check_pass(db)["aggregates_match"].failed
    broken = BREAKS["aggregates_match"][0]
    execute(db, *broken)
    quiet = check_pass(db)["aggregates_match"]
    assert quiet.offending_rows == 0 and quiet.since_seq == quiet.until_seq
    assert check_pass(db, full=True)["aggregates_match"].offending_rows == 1
    load_rows(db, "insert into articles (article_id, url, text, text_hash, body_source, ner_pipeline, n_shingles, "
                  "n_samples, run_id, loaded_at, load_seq, is_seed) values (77, 'http://127.0.0.1/seed/77', 't', "
                  "'h', 'extracted', 'p', 0, 0, 'r', now(), $seq, true)")
    after = check_pass(db)["aggregates_match"]
    assert after.offending_rows == 1 and after.sample[0]["aggregate"] == "daily_feed_articles"


def test_a_check_that_runs_out_of_memory_under_the_cap_runs_again_with_more(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cap below what DuckDB needs for some checks (8 MB: it wants ~20 MB to run a join at all) makes them run
    out of memory; the full pass runs each of those again with more, so no check fails for the cap."""
    with duckdb.connect(str(db), read_only=True) as conn:
        plain = checks.run_checks(conn, staging_dir=db.with_name("none"), full=True)
        starved = []
        for path in checks.check_files():
            with checks.memorylimit.capped(conn, "8MB"):
                one = checks.run_one(conn, path.stem, path.read_text(), {"since": -1, "until": 0})
            starved += [path.stem] if (one.error or "").startswith("OutOfMemoryException") else []
        monkeypatch.setattr(checks, "FULL_PASS_MEMORY", "8MB")
        monkeypatch.setattr(checks, "RETRY_MEMORY", "8MB")
        retried = checks.run_checks(conn, staging_dir=db.with_name("none"), full=True)
    assert starved  # the cap does bite: some checks cannot run under it
    assert [(r.name, r.offending_rows, r.error) for r in retried] == [
        (r.name, r.offending_rows, r.error) for r in plain]
    assert not any(r.error for r in retried)


def test_a_full_pass_runs_under_the_memory_cap_and_gives_the_limit_back(db: Path) -> None:
    """A full pass reads every row: DuckDB's buffer pool is capped while it runs (the scanned blocks are evicted
    as it goes, not kept up to 80% of RAM), and the connection has DuckDB's own limit again after it."""
    with duckdb.connect(str(db), read_only=True) as conn:
        before = conn.execute("select current_setting('memory_limit')").fetchone()[0]
        with checks.memorylimit.capped(conn, checks.FULL_PASS_MEMORY):
            capped = conn.execute("select current_setting('memory_limit')").fetchone()[0]
        results = checks.run_checks(conn, staging_dir=db.with_name("none"), full=True)
        after = conn.execute("select current_setting('memory_limit')").fetchone()[0]
    assert not any(r.failed for r in results)
    assert capped != before and after == before

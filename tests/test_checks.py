"""Warehouse checks: each holds on a demo-filled warehouse and returns the offending row once its invariant is
broken by a direct SQL write to a real DuckDB file; `newsflow check` exit codes; checks stored by an ingest.

Covers: flows.warehouse.checks, flows.run.alerts, flows.run.artifacts
"""

from __future__ import annotations

import json
import os
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
from flows.core.stats import RunStats
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.run.artifacts import markdown
from flows.warehouse import checks, staging
from flows.warehouse.runlock import run_lock

CHECKS = {"untagged_articles", "orphan_duplicates", "orphan_article_entities", "url_stored_and_duplicate",
          "feeds_without_state", "stale_running_runs", "stale_staged_batches", "shingle_samples_mismatch",
          "dedup_index_stale", "quarantined_batches", "stories_consistent"}

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
        ["insert into article_entities values (42, (select min(entity_id) from entities), 1)"],
        "article_id", "select 42"),
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
    assert "11 checks, 0 failing" in out

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

    execute(db, BREAKS["orphan_duplicates"][0][0])
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

"""Fault isolation at every unit of work: an unexpected exception inside one feed's fetch or parse, one page's
extraction, one text's tagging or one seed file becomes that unit's row with the code `internal_error`, and the
run goes on. Faults are injected with the NEWSFLOW_FAILPOINTS hook (flows/core/errors.py `failpoint`) into a real
ingest of the demo snapshot: real HTTP on 127.0.0.1, real DuckDB, real Prefect API.

Covers: flows.core.errors
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flows.core.settings import load_settings
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.run.ingest import ingest
from flows.warehouse.database import connect

FAULTS = ";".join([
    "parse_feed=Harbour Herald",  # raises after the feed was fetched, before it is parsed
    "fetch_feed=Valley Ledger",  # raises before the feed is requested
    "extract=orbital-fjord-first-launch",  # one page's extraction
    "tag=Gulbenkian",  # one text's tagging (the Carvalho retrospective)
    "seed=000_",  # the seed file
])


@pytest.fixture(scope="module")
def faulty_run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("isolation")
    mp = pytest.MonkeyPatch()
    mp.setenv("NEWSFLOW_FAILPOINTS", FAULTS)
    try:
        with LocalServer(DEMO_DATA) as server:
            config = demo_config(server, tmp / "wh" / "demo.duckdb", tmp)
            settings = load_settings(config, env={})
            summary = ingest(config=str(config))
    finally:
        mp.undo()
    with connect(settings.warehouse, read_only=True) as conn:
        def q(sql: str) -> list[tuple]:
            return conn.execute(sql).fetchall()

        fetches = {r[0]: r[1:] for r in q("select feed, outcome, error, error_detail from feed_fetches")}
        states = {r[0]: r[1:] for r in q("select feed, consecutive_failures, next_fetch_at, last_error from feeds")}
        pages = {r[0]: r[1:] for r in q("select url, outcome, error, error_detail from page_fetches")}
        articles = q("select url, body_source, fallback_reason, ner_pipeline, ner_skip_reason, text from articles")
        runs = q("select status, checks_failed from runs")
    return summary, fetches, states, pages, articles, runs


def test_the_run_completes(faulty_run: Any) -> None:
    summary, *_, runs = faulty_run
    assert summary["status"] == "completed"
    # ... and every warehouse check holds: each fault left its row and broke no invariant.
    assert runs == [("completed", 0)]


@pytest.mark.parametrize("feed", ["Harbour Herald", "The Valley Ledger"])
def test_a_feed_that_raises_is_its_own_internal_error_row_and_is_backed_off(faulty_run: Any, feed: str) -> None:
    _, fetches, states, *_ = faulty_run
    outcome, error, detail = fetches[feed]
    assert (outcome, error) == ("failed", "internal_error")
    assert detail.startswith("RuntimeError: injected fault")
    failures, next_fetch_at, last_error = states[feed]
    assert failures == 1 and last_error.startswith("internal_error: RuntimeError")
    assert next_fetch_at > datetime.now(UTC)


def test_the_other_feeds_go_on(faulty_run: Any) -> None:
    _, fetches, _, _, articles, _ = faulty_run
    assert fetches["Meridian Post"][0] == "ok" and fetches["Northgate Courier"][0] == "ok"
    assert len([a for a in articles if a[1] == "extracted"]) >= 5


def test_a_page_whose_extraction_raises_keeps_its_feed_summary(faulty_run: Any) -> None:
    pages, articles = faulty_run[3], faulty_run[4]
    [(url, (outcome, error, detail))] = [(u, p) for u, p in pages.items() if "orbital-fjord" in u]
    assert (outcome, error) == ("fallback", "internal_error") and "injected fault" in detail
    [article] = [a for a in articles if a[0] == url]
    assert article[1] == "feed_summary" and article[2].startswith("internal_error: RuntimeError")


def test_a_text_whose_tagging_raises_is_stored_untagged_with_the_reason(faulty_run: Any) -> None:
    articles = faulty_run[4]
    hit = [a for a in articles if "Gulbenkian" in a[5]]
    assert hit and all(a[3] is None and a[4].startswith("internal_error: RuntimeError") for a in hit)
    others = [a for a in articles if "Gulbenkian" not in a[5]]
    assert others and all(a[3] or a[4] for a in others)
    assert any(a[3] for a in others)


def test_a_seed_file_that_raises_is_its_own_row(faulty_run: Any) -> None:
    pages, articles = faulty_run[3], faulty_run[4]
    [(outcome, error, detail)] = [p for u, p in pages.items() if u.startswith("seed:000_")]
    assert (outcome, error) == ("failed", "internal_error") and "injected fault" in detail
    assert not [a for a in articles if a[0].startswith("seed:")]

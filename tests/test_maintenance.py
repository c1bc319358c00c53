"""The reprocess flow over a real demo warehouse: idempotent re-runs, a looser threshold, re-tagging, the run lock,
its `runs` row.

Covers: flows.ops.maintenance, flows.ops.reprocess
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from demo_warehouse import demo_filled

from flows.core.settings import load_settings
from flows.ops.maintenance import Step, reprocess
from flows.warehouse import aggregates
from flows.warehouse.database import connect
from flows.warehouse.runlock import run_lock


@pytest.fixture(scope="module")
def ingested(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's demo-filled warehouse (tests/demo_warehouse.py), kept pristine: each test works on a copy."""
    return demo_filled(tmp_path_factory)


@pytest.fixture
def wh(ingested: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(ingested, db)
    monkeypatch.setenv("NEWSFLOW_PIPELINE__WORKERS", "1")
    return db


def _q(db: Path, sql: str) -> list[tuple[Any, ...]]:
    settings = load_settings(warehouse=db, env={})
    with connect(settings.warehouse, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _state(db: Path) -> dict[str, Any]:
    return {
        "articles": _q(db, "select url from articles order by url"),
        "duplicates": _q(db, "select url, duplicate_of, method from duplicates order by url"),
        "links": _q(db, "select article_id, entity_id, mentions from article_entities order by all"),
        "buckets": _q(db, "select count(*) from lsh_buckets")[0][0],
        "samples": _q(db, "select count(*) from shingle_samples")[0][0],
    }


def test_reprocess_with_unchanged_settings_changes_nothing(wh: Path) -> None:
    before = _state(wh)
    result = reprocess(steps=[Step.dedup, Step.entities], only_stale=False, batch_size=5, warehouse_path=str(wh))
    assert result["dedup"]["duplicates_found"] == 0
    assert result["dedup"]["articles_seen"] == len(before["articles"]) and result["dedup"]["batches"] >= 3
    assert result["entities"]["articles_tagged"] == len(before["articles"])
    assert _state(wh) == before


def test_reprocess_records_its_runs_row_like_every_flow(wh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_DEDUP__SHINGLE_SIZE", "1")  # as below: the re-run finds copies to count
    monkeypatch.setenv("NEWSFLOW_DEDUP__JACCARD_THRESHOLD", "0.15")
    monkeypatch.setenv("NEWSFLOW_DEDUP__CONTAINMENT_THRESHOLD", "0.3")
    runs_before = _q(wh, "select count(*) from runs")[0][0]
    (seq_before,) = _q(wh, "select seq from load_sequence")[0]
    result = reprocess(steps=[Step.dedup, Step.entities], only_stale=False, batch_size=4, warehouse_path=str(wh))
    # What reprocess rewrites is numbered like a load's rows: the next incremental checks read it, and every link
    # carries at least its article's number (aggregates_match reads links from the smallest article number on).
    assert _q(wh, f"select count(*) filter (where load_seq <= {seq_before}), count(*) from duplicates "
                  f"where run_id = '{result['run_id']}'")[0][0] == 0
    assert _q(wh, f"select count(*) from article_entities where load_seq <= {seq_before}")[0][0] == 0
    assert _q(wh, "select count(*) from article_entities e join articles a using (article_id) "
                  "where e.load_seq < a.load_seq")[0][0] == 0
    rows = _q(wh, "select flow, status, started_at <= finished_at, parameters, duplicates_exact + duplicates_near, "
                  f"entity_mentions, articles_new, message from runs where run_id = '{result['run_id']}'")
    assert len(rows) == 1 and _q(wh, "select count(*) from runs")[0][0] == runs_before + 1
    flow, status, ordered, parameters, copies, mentions, new, message = rows[0]
    assert (flow, status, ordered, new) == ("reprocess", "completed", True, 0)
    assert json.loads(parameters) == {"steps": ["dedup", "entities"], "only_stale": False, "batch_size": 4}
    assert copies == result["dedup"]["duplicates_found"] > 0
    assert mentions == result["entities"]["entity_mentions"] > 0
    tagged = result["entities"]["articles_tagged"]
    assert message == (f"dedup: articles_seen={result['dedup']['articles_seen']}, duplicates_found={copies}; "
                       f"entities: articles_tagged={tagged}, entity_mentions={mentions}; search index: base")


def test_looser_threshold_moves_copies_to_duplicates(wh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _state(wh)
    monkeypatch.setenv("NEWSFLOW_DEDUP__SHINGLE_SIZE", "1")  # single words: stories on one topic now match
    monkeypatch.setenv("NEWSFLOW_DEDUP__JACCARD_THRESHOLD", "0.15")
    monkeypatch.setenv("NEWSFLOW_DEDUP__CONTAINMENT_THRESHOLD", "0.3")
    result = reprocess(steps=[Step.dedup], batch_size=4, warehouse_path=str(wh))
    found = result["dedup"]["duplicates_found"]
    after = _state(wh)
    assert found > 0
    assert len(after["articles"]) == len(before["articles"]) - found
    assert len(after["duplicates"]) == len(before["duplicates"]) + found
    # Consistent: every copy points at a stored article, nothing is both, seeds stay, no orphaned index rows.
    assert _q(wh, "select count(*) from duplicates d anti join articles a on a.article_id = d.duplicate_of") == [(0,)]
    assert _q(wh, "select count(*) from duplicates d semi join articles a on a.url = d.url") == [(0,)]
    assert _q(wh, "select count(*) from articles where is_seed") == [(1,)]
    for table in ("lsh_buckets", "shingle_samples", "article_entities"):
        assert _q(wh, f"select count(*) from {table} t anti join articles a using (article_id)") == [(0,)]
    # The index now says it was built with single-word shingles (the stale-index check compares it).
    assert _q(wh, "select params->>'shingle_size' from dedup_index") == [("1",)]
    # A second pass with the same settings finds nothing more.
    assert reprocess(steps=[Step.dedup], warehouse_path=str(wh))["dedup"]["duplicates_found"] == 0


def test_retag_only_stale_articles(wh: Path) -> None:
    before = _state(wh)
    settings = load_settings(warehouse=wh, env={})
    with connect(settings.warehouse) as conn:
        conn.execute("update articles set ner_pipeline = 'en_old-0.1' where article_id in "
                     "(select article_id from articles order by article_id limit 2)")
        conn.execute("delete from article_entities where article_id in "
                     "(select article_id from articles where ner_pipeline = 'en_old-0.1')")
    result = reprocess(steps=[Step.entities], warehouse_path=str(wh))
    assert result["entities"]["articles_tagged"] == 2
    assert _q(wh, "select count(*) from articles where ner_pipeline = 'en_old-0.1'") == [(0,)]
    assert _state(wh)["links"] == before["links"]


def test_reprocess_refuses_while_another_run_holds_the_warehouse(wh: Path) -> None:
    with run_lock(wh), pytest.raises(RuntimeError, match="holds"):
        reprocess(steps=[Step.dedup], warehouse_path=str(wh))


def test_reprocess_leaves_a_consent_page_untagged_and_out_of_the_dedup_index(wh: Path) -> None:
    settings = load_settings(warehouse=wh, env={})
    with connect(settings.warehouse) as conn:
        [(aid,)] = conn.execute("select article_id from articles where not is_seed order by article_id limit 1"
                                ).fetchall()
        conn.execute("update articles set is_consent_page = true, ner_pipeline = null, n_samples = 0, "
                     "ner_skip_reason = 'consent page', index_seq = null where article_id = ?", [aid])
        for table in ("article_entities", "lsh_buckets", "shingle_samples"):
            conn.execute(f"delete from {table} where article_id = ?", [aid])
    total = len(_state(wh)["articles"])
    result = reprocess(steps=[Step.dedup, Step.entities], only_stale=False, warehouse_path=str(wh))
    assert result["dedup"]["articles_seen"] == total - 1 and result["entities"]["articles_tagged"] == total
    row = _q(wh, f"select ner_pipeline, ner_skip_reason, n_samples, index_seq from articles where article_id = {aid}")
    assert row == [(None, "consent page", 0, None)]
    for table in ("article_entities", "lsh_buckets", "shingle_samples"):
        assert _q(wh, f"select count(*) from {table} where article_id = {aid}") == [(0,)]


def test_reprocess_keeps_the_report_aggregates_equal_to_a_rebuild(wh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Demoting copies (a looser threshold) and re-tagging every article update the report's aggregates in their
    own transactions: afterwards they equal a recompute from scratch (flows/warehouse/aggregates.py)."""
    monkeypatch.setenv("NEWSFLOW_DEDUP__SHINGLE_SIZE", "1")
    monkeypatch.setenv("NEWSFLOW_DEDUP__JACCARD_THRESHOLD", "0.15")
    monkeypatch.setenv("NEWSFLOW_DEDUP__CONTAINMENT_THRESHOLD", "0.3")
    result = reprocess(steps=[Step.dedup, Step.entities], only_stale=False, batch_size=4, warehouse_path=str(wh))
    assert result["dedup"]["duplicates_found"] > 0 and result["entities"]["articles_tagged"] > 0
    settings = load_settings(warehouse=wh, env={})
    with connect(settings.warehouse) as conn:
        kept = {t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr) for t in aggregates.TABLES}
        conn.execute("begin transaction")
        aggregates.rebuild_aggregates(conn)
        rebuilt = {t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr) for t in aggregates.TABLES}
        conn.execute("rollback")
    assert kept == rebuilt
    assert all(kept.values())  # every aggregate had figures to compare


def _stories(db: Path) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for story_id, article_id in _q(db, "select story_id, article_id from story_articles"):
        groups.setdefault(story_id, []).append(article_id)
    return sorted(sorted(g) for g in groups.values())


def test_reprocess_stories_rebuilds_them_with_the_current_settings(wh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _stories(wh)
    result = reprocess(steps=[Step.stories], batch_size=4, warehouse_path=str(wh))
    assert result["stories"]["articles_placed"] == sum(len(g) for g in before)
    assert result["stories"]["stories"] == len(before) and _stories(wh) == before
    # A stricter threshold: every write-up its own story, copies still with their original.
    monkeypatch.setenv("NEWSFLOW_STORIES__THRESHOLD", "0.99")
    reprocess(steps=[Step.stories], warehouse_path=str(wh))
    originals = _q(wh, "select count(*) from articles where not coalesce(is_consent_page, false)")[0][0]
    assert len(_stories(wh)) == originals
    assert _q(wh, "select count(*) from story_articles where copy_of is not null")[0][0] == 5
    assert _q(wh, "select message from runs where flow = 'reprocess' order by started_at desc limit 1")[0][0] \
        .startswith("stories: articles_placed=")

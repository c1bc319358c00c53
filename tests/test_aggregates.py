"""The report's aggregates (migration 0011) do not depend on how a warehouse was loaded: after any batching and order
of the same documents, after a seed file changed and after reprocessing, they equal a rebuild from scratch, and the
migration's back-fill gives the same figures. The aggregates_match check finds a wrong figure.

Real loader, real DuckDB files in tmp_path; documents from tests/data/dedup with varied dates, feeds, quality flags
and entities (hypothesis draws the batching and the order).

Covers: flows.warehouse.aggregates
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings, load_settings
from flows.ops.reprocess import redo_dedup
from flows.run.documents import signature_fields
from flows.warehouse import aggregates
from flows.warehouse.checks import CHECKS_DIR
from flows.warehouse.database import connect, migrate, migrations, transaction
from flows.warehouse.staging import Batch
from flows.warehouse.writer import load_batch, next_load_seq

DATA = Path(__file__).parent / "data" / "dedup"
DEDUP = DedupSettings()
T0 = datetime(2026, 11, 1, 6, tzinfo=UTC)


def _doc(i: int, path: Path) -> Document:
    """A document whose day, feed, quality flags and entities vary with `i` (some without any date)."""
    text = path.read_text()
    mentions = [{"name": f"{path.stem.split('__')[0]} person", "label": "PERSON", "mentions": 1 + i % 3},
                {"name": f"place {i % 4}", "label": "GPE", "mentions": 1}]
    published = None if i % 7 == 3 else T0 + timedelta(days=i % 9, hours=i % 20)
    return Document(url=f"https://outlet{i % 5}.example/{path.stem}", text=text,
                    body_source="feed_summary" if i % 6 == 0 else "extracted", feed=f"feed{i % 3}",
                    published_at=published, fetched_at=T0 + timedelta(days=i % 4), mentions=mentions,
                    ner_pipeline="test-1", access=(None, "free", "paywalled")[i % 3],
                    is_teaser=(None, False, True)[i % 3],
                    is_consent_page=i % 11 == 5, **signature_fields(text, DEDUP))


def _documents() -> list[Document]:
    paths = sorted((DATA / "stories").glob("*.txt")) + sorted((DATA / "variants").glob("*.txt"))[:40]
    paths += sorted((DATA / "negatives").glob("*.txt"))
    docs = [_doc(i, p) for i, p in enumerate(paths)]
    text = " ".join(f"seedword{k % 97} line{k % 13}" for k in range(300))  # like no story: stored as itself
    docs.append(dataclasses.replace(docs[0], url="seed:one.txt", is_seed=True, seed_file="one.txt",
                                    seed_file_hash="h1", feed=None, body_source="seed", published_at=None,
                                    fetched_at=None, text=text, **signature_fields(text, DEDUP)))
    return docs


DOCS = _documents()


def snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr) for t in aggregates.TABLES}


def rebuilt(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates a rebuild from scratch gives, leaving the warehouse as it was."""
    conn.execute("begin transaction")
    try:
        aggregates.rebuild_aggregates(conn)
        return snapshot(conn)
    finally:
        conn.execute("rollback")


def mismatches(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """The check's rows in a full pass (every load since -1)."""
    until = conn.execute("select max(seq) from load_sequence").fetchall()[0][0] or 0
    return conn.execute((CHECKS_DIR / "aggregates_match.sql").read_text(), {"since": -1, "until": until}).fetchall()


def _load(conn: duckdb.DuckDBPyConnection, docs: list[Document], size: int, run: str = "run-1") -> None:
    for n, start in enumerate(range(0, len(docs), size)):
        batch = Batch(f"{run}-{n:04d}", run)
        batch.add("docs", *docs[start:start + size])
        load_batch(conn, batch, DEDUP)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    wh = WarehouseSettings(path=tmp_path_factory.mktemp("ref") / "wh.duckdb")
    with connect(wh) as conn:
        migrate(conn)
        _load(conn, DOCS, len(DOCS))
        return snapshot(conn)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.sampled_from([1, 5, 13, 200]), order=st.permutations(range(len(DOCS))))
def test_any_batching_and_order_gives_the_rebuilt_aggregates(tmp_path_factory: pytest.TempPathFactory, size: int,
                                                              order: list[int]) -> None:
    wh = WarehouseSettings(path=tmp_path_factory.mktemp("agg") / "wh.duckdb")
    with connect(wh) as conn:
        migrate(conn)
        _load(conn, [DOCS[i] for i in order], size)
        assert snapshot(conn) == rebuilt(conn)
        assert all(snapshot(conn)[t] for t in aggregates.TABLES)  # every aggregate has figures to compare
        assert mismatches(conn) == []


def test_loading_a_batch_again_changes_no_figure(tmp_path: Path, reference: dict[str, Any]) -> None:
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        _load(conn, DOCS, 9)
        _load(conn, DOCS, 9)
        _load(conn, DOCS[:20], 4, run="run-2")
        assert snapshot(conn) == rebuilt(conn)
        # Entity and feed figures do not depend on which copy of a story was kept first here (one batch in the
        # reference), so the totals of the report match too.
        assert sum(r[1] for r in snapshot(conn)["entity_totals"]) == sum(r[1] for r in reference["entity_totals"])


def test_a_changed_seed_file_takes_its_old_figures_away(tmp_path: Path) -> None:
    seed = DOCS[-1]
    changed = dataclasses.replace(seed, seed_file_hash="h2", mentions=[{"name": "new", "label": "ORG", "mentions": 4}],
                                  access="paywalled")
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        _load(conn, DOCS, 16)
        _load(conn, [changed], 1, run="run-2")
        totals = dict(conn.execute("select e.name, t.mentions from entity_totals t join entities e using (entity_id)")
                      .fetchall())
        assert totals["new"] == 4
        assert snapshot(conn) == rebuilt(conn)
        assert mismatches(conn) == []


def test_the_migration_back_fills_what_the_loads_kept(tmp_path: Path) -> None:
    """A warehouse loaded before migration 0011, migrated: the back-fill equals the aggregates the loads keep."""
    loaded = tmp_path / "loaded.duckdb"
    with connect(WarehouseSettings(path=loaded)) as conn:
        migrate(conn)
        _load(conn, DOCS, 11)
        kept = snapshot(conn)
    old = WarehouseSettings(path=tmp_path / "old.duckdb")
    with connect(old) as conn:
        migrate(conn, migrations()[:10])
        conn.execute(f"attach '{loaded}' as src (read_only)")
        for table in ("articles", "article_entities", "entities", "duplicates"):
            conn.execute(f"insert into {table} by name select * from src.{table}")
        conn.execute("detach src")
        migrate(conn)
        assert snapshot(conn) == kept


def test_reprocessing_that_demotes_copies_keeps_the_aggregates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    db = tmp_path / "wh.duckdb"
    with connect(WarehouseSettings(path=db)) as conn:
        migrate(conn)
        _load(conn, DOCS, 16)
        before = len(snapshot(conn)["story_copies"])
    loose = {"NEWSFLOW_DEDUP__SHINGLE_SIZE": "1", "NEWSFLOW_DEDUP__JACCARD_THRESHOLD": "0.15",
             "NEWSFLOW_DEDUP__CONTAINMENT_THRESHOLD": "0.3"}
    stats = redo_dedup(load_settings(warehouse=db, env=loose), "reprocess-1", 6, lambda done, total: None)
    assert stats.duplicates_found > 0
    with connect(WarehouseSettings(path=db)) as conn:
        assert snapshot(conn) == rebuilt(conn)
        assert len(snapshot(conn)["story_copies"]) != before or stats.duplicates_found
        assert mismatches(conn) == []


def test_the_check_finds_a_wrong_figure_and_a_missing_one(tmp_path: Path) -> None:
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        _load(conn, DOCS, 32)
        assert mismatches(conn) == []
        last = conn.execute("select max(day) from daily_feed_articles").fetchone()[0]
        tagged = conn.execute("select max(day) from daily_entity_mentions").fetchone()[0]
        with transaction(conn):
            conn.execute("update daily_feed_articles set articles = articles + 1 where day = $d", {"d": last})
            conn.execute("delete from daily_entity_mentions where day = $d", {"d": tagged})
        found = mismatches(conn)
        assert {(r[0], r[1]) for r in found} == {("daily_feed_articles", last), ("daily_entity_mentions", tagged)}
        with transaction(conn):
            aggregates.rebuild_aggregates(conn)
        assert mismatches(conn) == []
        # A baseline (migration 0017) that no longer sums the 7 days before its row.
        day, entity = conn.execute("select day, entity_id from daily_entity_mentions where day = $d "
                                   "order by entity_id limit 1", {"d": tagged}).fetchone()
        with transaction(conn):
            conn.execute("update daily_entity_mentions set prior_7d = prior_7d + 2 where day = $d and entity_id = $e",
                         {"d": day, "e": entity})
        assert [(r[0], r[1], r[2]) for r in mismatches(conn)] == [("daily_entity_mentions.prior_7d", day,
                                                                    str(entity))]
        # Compared in full passes only (the nightly `newsflow check`): a run's incremental pass leaves it.
        until = conn.execute("select max(seq) from load_sequence").fetchall()[0][0]
        incremental = conn.execute((CHECKS_DIR / "aggregates_match.sql").read_text(),
                                   {"since": until - 1, "until": until}).fetchall()
        assert incremental == []


def test_a_far_future_day_does_not_hide_a_wrong_figure_on_the_last_days(tmp_path: Path) -> None:
    """An article stored with a day years ahead (before feeds' dates were checked against the fetch): the check still
    compares the last 2 days up to tomorrow, and finds a wrong figure there."""
    text = " ".join(f"futureword{k % 89} clause{k % 17}" for k in range(300))  # like no other document
    future = dataclasses.replace(DOCS[1], url="https://outlet9.example/future", text=text,
                                 published_at=datetime(2099, 1, 1, tzinfo=UTC), **signature_fields(text, DEDUP))
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        _load(conn, [*DOCS, future], 32)
        assert conn.execute("select max(day) from daily_feed_articles").fetchone()[0].year == 2099
        assert mismatches(conn) == []
        last = conn.execute("select max(day) from daily_feed_articles where day < date '2099-01-01'").fetchone()[0]
        with transaction(conn):
            conn.execute("update daily_feed_articles set articles = articles + 1 where day = $d", {"d": last})
        assert {(r[0], r[1]) for r in mismatches(conn)} == {("daily_feed_articles", last)}


def test_the_check_finds_a_link_a_later_load_added_to_a_recent_article(tmp_path: Path) -> None:
    """Links are read from the smallest load number of the recent articles on (zone maps skip older ones): a link
    that a later load gave a recent article without its aggregate row is still found, an older article's is not
    read (older days are for rebuild_aggregates)."""
    with connect(WarehouseSettings(path=tmp_path / "wh.duckdb")) as conn:
        migrate(conn)
        _load(conn, DOCS, 8)
        assert mismatches(conn) == []
        tagged = conn.execute("select max(day) from daily_entity_mentions").fetchone()[0]
        recent = conn.execute("select article_id from articles where cast(coalesce(published_at, fetched_at, "
                              "loaded_at) at time zone 'UTC' as date) = $d "
                              "order by load_seq limit 1", {"d": tagged}).fetchone()[0]
        with transaction(conn):
            seq = next_load_seq(conn)
            conn.execute("insert into entities values (4242, 'Zed Example', 'PERSON', now())")
            conn.execute("insert into article_entities (article_id, entity_id, mentions, load_seq) "
                         "values ($a, 4242, 3, $s)", {"a": recent, "s": seq})
        assert [(r[0], r[1], r[2]) for r in mismatches(conn)] == [("daily_entity_mentions", tagged, "4242")]

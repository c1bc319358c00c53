"""The typed records: staged tables keep every column whatever their first row holds, batches of the previous
staging version still load, and loading a batch twice changes nothing; a run's counts add up its loads; fsync
takes files and folders. Real Parquet files, real DuckDB.

Covers: flows.core.records, flows.core.stats, flows.core.files, flows.warehouse.staging, flows.warehouse.writer
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.core.errors import StagingError
from flows.core.files import fsync
from flows.core.records import DOCUMENT_SCHEMA, SCHEMA_VERSION, TABLE_SCHEMAS, Document, rows_table
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings
from flows.core.stats import RunStats
from flows.run.documents import signature_fields
from flows.text import dedup
from flows.warehouse import staging
from flows.warehouse.database import connect, migrate
from flows.warehouse.writer import load_batch

DEDUP = DedupSettings()
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
STORY = ("The harbour authority of Northgate approved a plan on Monday to rebuild the old sea wall, after "
         "two winters of storms flooded the fish market. Work starts in spring and should take three years. ")
OTHER = ("A choir from the valley towns won the regional singing contest for the first time, with a programme "
         "of folk songs arranged by its youngest member, who is seventeen. The final was held in the old mill. ")


def _doc(url: str, text: str, **kw: object) -> Document:
    return Document(url=url, text=text, body_source="extracted", feed="f", published_at=NOW,
                    **signature_fields(text, DEDUP), **kw)  # type: ignore[arg-type]


def _tagged(url: str, text: str, names: list[str]) -> Document:
    return _doc(url, text, mentions=[{"name": n, "label": "ORG", "mentions": 2} for n in names],
                ner_pipeline="en_test-1.0")


def _load(wh: WarehouseSettings, batch: staging.Batch) -> None:
    with connect(wh) as conn:
        migrate(conn)
        load_batch(conn, batch, DEDUP)


def _q(wh: WarehouseSettings, sql: str) -> list[tuple]:
    with connect(wh, read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def wh(tmp_path: Path) -> WarehouseSettings:
    return WarehouseSettings(path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging")


def test_a_batch_whose_first_document_was_not_tagged_keeps_the_others_entities(wh: WarehouseSettings) -> None:
    """The bug that lost every entity of a batch: column inference from a first row without `mentions`."""
    copy = _doc("https://a.example/copy", STORY * 3, ner_skip_reason="copy: pre-check")
    batch = staging.Batch("b-0001", "run-1")
    batch.add("docs", copy, _tagged("https://b.example/story", STORY * 3 + "Extra.", []),
              _tagged("https://c.example/choir", OTHER * 3, ["Valley Choir", "Old Mill"]))
    read = staging.read(staging.write(batch, wh.staging_dir))
    assert sorted(m["name"] for m in read.docs[2].mentions) == ["Old Mill", "Valley Choir"]
    assert read.docs[2].ner_pipeline == "en_test-1.0"
    _load(wh, read)
    assert _q(wh, "select count(*) from article_entities")[0][0] == 2
    assert _q(wh, "select url, ner_pipeline, ner_skip_reason from articles order by url") == [
        ("https://a.example/copy", None, "copy: pre-check"),
        ("https://c.example/choir", "en_test-1.0", None),
    ]


def test_staged_tables_keep_their_columns_when_the_first_row_lacks_some(wh: WarehouseSettings) -> None:
    """A skipped feed first in `feed_fetches` once dropped final_url, http_status, bytes for the whole batch."""
    batch = staging.Batch("b-0001", "run-1")
    batch.add("feed_fetches",
              {"fetch_id": "run-1:a", "run_id": "run-1", "feed": "a", "url": "http://a/", "outcome": "skipped",
               "fetched_at": NOW},
              {"fetch_id": "run-1:b", "run_id": "run-1", "feed": "b", "url": "http://b/", "final_url": "http://b/2",
               "http_status": 200, "bytes": 512, "duration_ms": 3.5, "entries": 4, "new_entries": 1,
               "outcome": "ok", "fetched_at": NOW})
    rows = staging.read(staging.write(batch, wh.staging_dir)).rows("feed_fetches")
    assert rows[1]["final_url"] == "http://b/2" and rows[1]["http_status"] == 200 and rows[1]["bytes"] == 512
    assert rows[0]["final_url"] is None


def test_an_unknown_column_is_an_error_not_a_silent_drop() -> None:
    with pytest.raises(ValueError, match="no column"):
        rows_table("runs", [{"run_id": "r", "no_such_column": 1}])


def test_every_staged_table_schema_matches_the_warehouse_columns(wh: WarehouseSettings) -> None:
    with connect(wh) as conn:
        migrate(conn)
        for table, schema in TABLE_SCHEMAS.items():
            columns = {r[0] for r in conn.execute(
                "select column_name from information_schema.columns where table_name = $t", {"t": table}
            ).fetchall()}
            assert set(schema.names) <= columns, f"{table}: {set(schema.names) - columns}"
        article_columns = {r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_name = 'articles'").fetchall()}
    stored = set(DOCUMENT_SCHEMA.names) - {"shingles", "buckets", "samples", "raw_html", "mentions"}
    assert stored <= article_columns


def _write_v1_batch(path: Path, docs: list[dict]) -> None:
    """A batch exactly as staging version 1 wrote it: no version file, columns inferred from the rows."""
    path.mkdir(parents=True)
    (path / "run_id").write_text("run-old")
    pq.write_table(pa.Table.from_pylist(docs), path / "docs.parquet", compression="zstd")


def test_a_batch_staged_by_the_previous_version_still_loads(wh: WarehouseSettings) -> None:
    sig = signature_fields(OTHER * 3, DEDUP)
    old = {"url": "https://old.example/1", "feed": "f", "entry_guid": "g", "title": "t", "author": None,
           "published_at": NOW, "published_source": "feed", "fetched_at": NOW, "language": "en",
           "site_name": None, "canonical_url": None, "final_url": None, "http_status": 200, "text": OTHER * 3,
           "body_source": "extracted", "fallback_reason": None, "is_seed": False, "seed_file": None,
           "seed_file_hash": None, "extractor": "trafilatura", "extractor_version": "2",
           "extractor_options": "{}", "raw_html": None, **sig,
           "mentions": [{"name": "Valley Choir", "label": "ORG", "mentions": 1}], "ner_pipeline": "en_old-1"}
    _write_v1_batch(wh.staging_dir / "20261130T000000-old-0001", [old])
    [path] = staging.pending(wh.staging_dir)
    batch = staging.read(path)
    assert batch.schema_version == 1 and batch.docs[0].ner_skip_reason is None
    _load(wh, batch)
    assert _q(wh, "select url, ner_pipeline from articles") == [("https://old.example/1", "en_old-1")]
    assert _q(wh, "select count(*) from article_entities")[0][0] == 1


def test_a_batch_from_a_newer_version_is_refused_with_a_clear_error(wh: WarehouseSettings) -> None:
    batch = staging.Batch("b-0001", "run-1")
    path = staging.write(batch, wh.staging_dir)
    (path / "schema_version").write_text(str(SCHEMA_VERSION + 1))
    with pytest.raises(StagingError, match="upgrade newsflow"):
        staging.read(path)


def test_loading_a_batch_twice_changes_nothing(wh: WarehouseSettings) -> None:
    batch = staging.Batch("b-0001", "run-1")
    batch.add("docs", _tagged("https://c.example/choir", OTHER * 3, ["Valley Choir"]),
              _doc("https://d.example/copy", OTHER * 3 + "More.", ner_skip_reason="copy"),
              _tagged("https://e.example/wall", STORY * 3, ["Northgate"]))
    tables = ("articles", "duplicates", "article_entities", "entities", "lsh_buckets", "shingle_samples")

    def snapshot() -> dict[str, list[tuple]]:
        with connect(wh, read_only=True) as conn:
            return {t: sorted(conn.execute(f"select * exclude (loaded_at) from {t}" if t == "articles" else
                                           f"select * exclude (seen_at) from {t}" if t == "duplicates" else
                                           f"select * exclude (first_seen_at) from {t}" if t == "entities" else
                                           f"select * from {t}").fetchall(), key=repr) for t in tables}

    _load(wh, batch)
    first = snapshot()
    _load(wh, batch)
    assert snapshot() == first
    assert len(first["articles"]) == 2 and len(first["duplicates"]) == 1
    assert dedup.text_hash(OTHER * 3) != dedup.text_hash(STORY * 3)


def test_a_runs_counts_add_up_what_each_load_reports(wh: WarehouseSettings) -> None:
    first = staging.Batch("b-0001", "run-1")
    first.add("docs", _tagged("https://c.example/choir", OTHER * 3, ["Valley Choir", "Mill"]))
    second = staging.Batch("b-0002", "run-1")
    second.add("docs", _doc("https://d.example/copy", OTHER * 3, ner_skip_reason="copy"),
               _tagged("https://e.example/wall", STORY * 3, ["Northgate"]))
    stats = RunStats()
    with connect(wh) as conn:
        migrate(conn)
        for batch in (first, second):
            stats.add_load(load_batch(conn, batch, DEDUP))
    counts = stats.counts()
    assert (counts["articles_new"], counts["duplicates_exact"], counts["duplicates_near"]) == (2, 1, 0)
    assert counts["entity_mentions"] == _q(wh, "select sum(mentions) from article_entities")[0][0] == 6


def test_fsync_takes_files_and_folders_and_refuses_what_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "f.parquet").write_bytes(b"x")
    fsync(tmp_path / "f.parquet")
    fsync(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync(tmp_path / "missing")

"""The warehouse module on real DuckDB files: migrations, views, staging, snapshot, raw-HTML retention, export.

Covers: flows.warehouse.database, flows.warehouse.archive, flows.warehouse.export, flows.warehouse.rawcodec
Covers: flows.warehouse.snapshot, flows.warehouse.identity
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from demo_warehouse import copy_demo
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from flows.core import records
from flows.core.sections import DedupSettings
from flows.core.settings import Settings, WarehouseSettings, load_settings
from flows.text import dedup
from flows.warehouse import archive, candidates, checks, database, identity, rawcodec, snapshot, staging, store
from flows.warehouse.export import export, read_raw_html

VIEWS = ("article_provenance", "articles_per_day", "articles_per_feed", "entity_comentions", "entity_mentions_top",
         "entity_surges", "entity_timeline", "run_history", "syndication")


def _settings(tmp_path: Path, **extra: object) -> WarehouseSettings:
    return WarehouseSettings(path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging",
                             snapshot_path=tmp_path / "snap" / "wh.duckdb", lock_wait_seconds=0.5, **extra)


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_type = 'BASE TABLE'").fetchall()}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    return copy_demo(tmp_path_factory, tmp_path_factory.mktemp("wh-module") / "demo.duckdb")


# ---------------------------------------------------------------- migrations

def test_migrate_from_empty_creates_every_table_and_view(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "new.duckdb")) as conn:
        applied = database.migrate(conn)
        assert applied == [name for _, name, _ in database.migrations()]
        assert database.schema_version(conn) == len(database.migrations())
        assert {"runs", "feeds", "feed_fetches", "entries", "articles", "duplicates", "entities",
                "article_entities", "page_fetches", "raw_archive", "lsh_buckets", "shingle_samples"} <= _tables(conn)
        views = {r[0] for r in conn.execute("select view_name from duckdb_views() where not internal").fetchall()}
        assert set(VIEWS) <= views
        assert database.migrate(conn) == []  # a second run changes nothing


def test_views_are_recreated_only_when_missing_or_their_file_changed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    views = tmp_path / "views"
    shutil.copytree(database.VIEWS_DIR, views)
    monkeypatch.setattr(database, "VIEWS_DIR", views)

    def view_sql(conn: duckdb.DuckDBPyConnection, name: str) -> str:
        return conn.execute("select sql from duckdb_views() where view_name = $n", {"n": name}).fetchone()[0]

    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        database.migrate(conn)
        assert not database._views_stale(conn, lake=False)
        # A view someone replaced by hand (its mark gone) is put back by the next migrate.
        conn.execute("create or replace view run_history as select 1 as x")
        assert database._views_stale(conn, lake=False)
        database.migrate(conn)
        assert "x" not in [c[0] for c in conn.execute("select * from run_history limit 0").description]
        # A view file edited by an upgrade reaches the warehouse on the next open.
        edited = views / "articles_per_feed.sql"
        edited.write_text(f"select * from ({edited.read_text()}) as t, (select 42 as newsflow_marker)")
        assert database._views_stale(conn, lake=False)
        database.migrate(conn)
        assert "newsflow_marker" in view_sql(conn, "articles_per_feed")
        # A dropped view comes back.
        conn.execute("drop view syndication")
        database.migrate(conn)
        assert not database._views_stale(conn, lake=False)


@pytest.mark.parametrize("version", range(len(database.migrations())))
def test_migrate_from_every_earlier_version_keeps_data(tmp_path: Path, version: int) -> None:
    known = database.migrations()
    with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
        database.migrate(conn, known[:version])
        assert database.schema_version(conn) == version
        if version >= 1:
            conn.execute("insert into feeds (feed, url, configured_url) values ('f', 'http://x/', 'http://x/')")
        assert database.migrate(conn) == [name for _, name, _ in known[version:]]
        assert database.schema_version(conn) == len(known)
        assert conn.execute("select count(*) from feeds").fetchone()[0] == (1 if version >= 1 else 0)
        for view in VIEWS:
            conn.execute(f"select * from {view}").fetchall()


def test_migration_5_folds_stored_buckets_into_keys_and_marks_the_index_unrecorded(tmp_path: Path) -> None:
    known = database.migrations()
    sig = dedup.signature("A story long enough to be signed, told in plain words. " * 20, DedupSettings())
    with duckdb.connect(str(tmp_path / "v4.duckdb")) as conn:
        database.migrate(conn, known[:4])
        conn.execute("insert into articles (article_id, url, text, text_hash, body_source, n_shingles, n_samples, "
                     "run_id, loaded_at) values (7, 'http://127.0.0.1/a', 't', 'h', 'extracted', 9, 2, 'r', now())")
        conn.execute("insert into lsh_buckets select unnest(range(32)), unnest($b::bigint[]), 7",
                     {"b": sig.buckets.tolist()})
        conn.execute("insert into shingle_samples values (16, 7), (-8, 7)")
        assert database.migrate(conn) == [name for _, name, _ in known[4:]]
        keys = [k for k, in conn.execute("select key from lsh_buckets where article_id = 7 order by key").fetchall()]
        samples = conn.execute("select hash, article_id from shingle_samples order by hash").fetchall()
        index = conn.execute("select method, params from dedup_index").fetchall()
    # The SQL fold gives the keys a fresh signature of the same article has, so old rows are still found.
    assert keys == sorted(candidates.bucket_keys(sig.buckets).tolist())
    assert len(set(keys)) == 32
    assert samples == [(-8, 7), (16, 7)]
    assert index == [("unrecorded", None)]  # built before the method was recorded: the check asks for a re-sign


def test_migration_5_of_an_empty_warehouse_leaves_the_index_record_to_the_first_load(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "v4.duckdb")) as conn:
        database.migrate(conn, database.migrations()[:4])
        database.migrate(conn)
        assert conn.execute("select count(*) from dedup_index").fetchone() == (0,)


def test_failed_migration_rolls_back_with_its_record(tmp_path: Path) -> None:
    known = database.migrations()
    broken = [*known, (len(known) + 1, "9999_broken.sql", "create table half_done (x int); select * from nowhere;")]
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        database.migrate(conn)
        with pytest.raises(duckdb.Error):
            database.migrate(conn, broken)
        assert database.schema_version(conn) == len(known)
        assert "half_done" not in _tables(conn)


def test_newer_schema_than_the_code_is_refused(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        database.migrate(conn)
        conn.execute("insert into schema_migrations values (999, '0999_future.sql', now())")
        with pytest.raises(database.WarehouseError, match="newer than this newsflow"):
            database.migrate(conn)


def test_migration_files_are_numbered_without_gaps() -> None:
    found = database.migrations()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))


# ---------------------------------------------------------------- views on a demo-filled warehouse

@pytest.mark.parametrize("view", VIEWS)
def test_every_view_answers_on_the_demo(demo_db: Path, view: str) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        assert conn.execute(f"select count(*) from {view}").fetchone()[0] > 0


def test_syndication_lists_the_outlets_that_carried_the_seed_story(demo_db: Path) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        rows = conn.execute("select is_seed, copies, n_outlets, outlets from syndication").fetchall()
        dups = conn.execute("select count(*), count(distinct feed) from duplicates").fetchone()
    assert sum(r[1] for r in rows) == dups[0]
    seed = [r for r in rows if r[0]]
    assert seed and seed[0][2] == len(seed[0][3]) >= 2


def test_article_provenance_has_one_row_per_article_with_its_sources(demo_db: Path) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        n_articles = conn.execute("select count(*) from articles").fetchone()[0]
        rows = conn.execute(
            "select is_seed, feeds, http_status, extractor, published_source, ner_pipeline, body_source "
            "from article_provenance").fetchall()
    assert len(rows) == n_articles
    for is_seed, feeds, status, extractor, source, ner, body in rows:
        assert ner
        if is_seed:
            assert source == "seed" and feeds == []
        else:
            assert feeds and status is not None and source in ("feed", "page")
            assert (extractor == "trafilatura") == (body == "extracted")


def test_entity_surges_against_the_trailing_week(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        database.migrate(conn)
        conn.execute("insert into entities values (1, 'Lumora', 'ORG', now())")
        days = [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3, 10)]
        for i, day in enumerate(days):
            conn.execute(
                "insert into articles (article_id, url, text, text_hash, body_source, n_shingles, n_samples, "
                "run_id, loaded_at, published_at) values (?, ?, 'x', ?, 'extracted', 1, 0, 'r', now(), ?)",
                [i, f"http://a/{i}", f"h{i}", day])
            conn.execute("insert into article_entities (article_id, entity_id, mentions) values (?, 1, ?)",
                         [i, 7 if i == 3 else 1])
        rows = dict(((d.day, (m, b, s)) for d, m, b, s in conn.execute(
            "select day, mentions, baseline_7d, surge_ratio from entity_surges").fetchall()))
    assert rows[1] == (1, 0.0, 2.0)
    assert rows[3] == (1, round(2 / 7, 3), round(2 / (2 / 7 + 1), 3))
    # 10 May: the week before (3-9 May) holds one mention.
    assert rows[10] == (7, round(1 / 7, 3), round(8 / (1 / 7 + 1), 3))


# ---------------------------------------------------------------- raw HTML retention

def _archive(raw_dir: Path, batch_id: str, day: datetime, urls: list[str], age_days: float) -> str:
    """One archive file of the given pages, its modification time set `age_days` back."""
    rows = [{"url": u, "fetched_at": day, "encoding": "zlib", "html": zlib.compress(f"<html>{u}</html>".encode())}
            for u in urls]
    rel = archive.write_archive(raw_dir, batch_id, day.date(), rows)
    stamp = time.time() - age_days * 86400
    os.utime(raw_dir / rel, (stamp, stamp))
    return rel


def test_raw_html_past_retention_is_purged_and_zero_keeps_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    old, new = datetime.now(UTC) - timedelta(days=40), datetime.now(UTC)
    old_file = _archive(settings.raw_dir, "b-old", old, ["http://a/old"], 40)
    new_file = _archive(settings.raw_dir, "b-new", new, ["http://a/new"], 0)
    orphan = _archive(settings.raw_dir, "b-orphan", old - timedelta(days=1), ["http://a/orphan"], 41)
    with duckdb.connect(str(settings.path)) as conn:
        database.migrate(conn)
        conn.executemany("insert into raw_archive values (?, ?, ?, 1)",
                         [["http://a/old", old, old_file], ["http://a/new", new, new_file]])
        conn.execute("insert into raw_pages values ('http://a/legacy', ?, 'zlib', ?)",
                     [old, zlib.compress(b"<html>legacy</html>")])
        assert read_raw_html(settings, "http://a/old", conn=conn) == b"<html>http://a/old</html>"
        assert read_raw_html(settings, "http://a/legacy", conn=conn) == b"<html>legacy</html>"
        assert database.purge_raw_html(conn, 0, raw_dir=settings.raw_dir) == 0
        assert (settings.raw_dir / old_file).exists() and (settings.raw_dir / orphan).exists()
        assert database.purge_raw_html(conn, 30, raw_dir=settings.raw_dir) == 2  # archive pointer + legacy row
        assert conn.execute("select url from raw_archive").fetchall() == [("http://a/new",)]
        assert conn.execute("select count(*) from raw_pages").fetchone()[0] == 0
        assert read_raw_html(settings, "http://a/old", conn=conn) is None
        assert read_raw_html(settings, "http://a/new", conn=conn) == b"<html>http://a/new</html>"
    assert sorted(p.parent.name for p in settings.raw_dir.glob("*/*.parquet")) == [f"{new:%Y-%m-%d}"]


def test_an_archive_mixing_codecs_reads_every_page_back(tmp_path: Path) -> None:
    """Pages archived as zlib before the switch to zstd stay readable beside new ones, in one file or two."""
    settings = _settings(tmp_path)
    day = datetime.now(UTC)
    pages = {f"http://a/{i}": f"<html>page {i} {'x' * i}</html>".encode() for i in range(4)}
    rows = [{"url": u, "fetched_at": day, "encoding": rawcodec.encoding_of(blob), "html": blob}
            for i, (u, body) in enumerate(pages.items())
            for blob in [rawcodec.compress(body) if i % 2 else zlib.compress(body, 1)]]
    assert [r["encoding"] for r in rows] == ["zlib", "zstd", "zlib", "zstd"]
    rel = archive.write_archive(settings.raw_dir, "b-mixed", day.date(), rows)
    with duckdb.connect(str(settings.path)) as conn:
        database.migrate(conn)
        conn.executemany("insert into raw_archive values (?, ?, ?, 1)", [[u, day, rel] for u in pages])
        for url, body in pages.items():
            assert read_raw_html(settings, url, conn=conn) == body
    with pytest.raises(ValueError, match="unknown raw HTML encoding"):
        rawcodec.decode("brotli", b"")


def test_a_day_folder_a_pointer_still_uses_is_kept(tmp_path: Path) -> None:
    """A batch staged for days keeps old fetch times in a recent file: the file outlives its rows, never the
    reverse, and a folder is kept while any row points into it."""
    settings = _settings(tmp_path)
    fetched = datetime.now(UTC) - timedelta(days=1)
    kept = _archive(settings.raw_dir, "b-kept", fetched, ["http://a/kept"], 40)
    with duckdb.connect(str(settings.path)) as conn:
        database.migrate(conn)
        conn.execute("insert into raw_archive values ('http://a/kept', ?, ?, 1)", [fetched, kept])
        assert database.purge_raw_html(conn, 30, raw_dir=settings.raw_dir) == 0
    assert (settings.raw_dir / kept).exists()


def test_expired_day_folders_are_found_without_listing_the_recent_ones(tmp_path: Path) -> None:
    """Only folders whose every file is past the retention expire; a folder named after a day within it is not
    listed (its files were written that day or later), one named otherwise is judged by its files."""
    raw = tmp_path / "raw"
    now = datetime.now(UTC)
    _archive(raw, "b-old", now - timedelta(days=40), ["http://a/old"], 40)
    _archive(raw, "b-mixed-old", now - timedelta(days=39), ["http://a/m1"], 39)
    _archive(raw, "b-mixed-new", now - timedelta(days=39), ["http://a/m2"], 1)  # rewritten since: the folder stays
    _archive(raw, "b-new", now, ["http://a/new"], 0)
    (raw / "by-hand").mkdir()
    stale = raw / "by-hand" / "x.parquet"
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - 50 * 86400,) * 2)
    assert archive.expired_days(raw, 30) == sorted([f"{now - timedelta(days=40):%Y-%m-%d}", "by-hand"])
    assert archive.expired_days(raw, 0) == []


def test_ensure_ready_applies_the_retention(tmp_path: Path) -> None:
    settings = _settings(tmp_path, raw_html_retention_days=7)
    assert database.ensure_ready(settings)
    old = datetime.now(UTC) - timedelta(days=8)
    rel = _archive(settings.raw_dir, "b1", old, ["http://a/"], 8)
    with duckdb.connect(str(settings.path)) as conn:
        conn.execute("insert into raw_archive values ('http://a/', ?, ?, 1)", [old, rel])
    assert database.ensure_ready(settings)
    with duckdb.connect(str(settings.path)) as conn:
        assert conn.execute("select count(*) from raw_archive").fetchone()[0] == 0
    assert not (settings.raw_dir / rel).exists()


# ---------------------------------------------------------------- staging

def test_staged_batch_round_trips_and_partial_writes_are_cleaned(tmp_path: Path) -> None:
    batch = staging.Batch("20240101T000000-abcd-0001", "run-1")
    batch.add("entries", {"feed": "f", "guid": "g", "url": "http://a/"})
    path = staging.write(batch, tmp_path)
    left, writing = tmp_path / "20240101T000000-abcd-0002.tmp", tmp_path / "20240101T000000-efgh-0001.tmp"
    left.mkdir()
    writing.mkdir()
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    assert staging.pending(tmp_path) == [path]
    # Read back with the table's full schema: columns the row did not set are typed nulls.
    [row] = staging.read(path).rows("entries")
    assert row["url"] == "http://a/" and set(row) == set(records.TABLE_SCHEMAS["entries"].names)
    assert row["title"] is None
    # A retry of the same batch keeps the staged copy instead of rewriting it.
    assert staging.write(batch, tmp_path) == path
    # An old leftover goes; a fresh one may belong to a process writing it right now.
    assert staging.remove_partial(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, writing.name]


# ---------------------------------------------------------------- snapshot and readers

def test_snapshot_is_replaced_atomically_while_a_reader_keeps_the_old_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        conn.execute("insert into feeds (feed, url, configured_url) values ('a', 'u', 'u')")
    assert snapshot.publish_snapshot(settings) == settings.snapshot_path
    old = duckdb.connect(str(settings.snapshot_path), read_only=True)
    with database.connect(settings) as conn:
        conn.execute("insert into feeds (feed, url, configured_url) values ('b', 'u', 'u')")
    snapshot.publish_snapshot(settings)
    assert old.execute("select count(*) from feeds").fetchone()[0] == 1
    old.close()
    with duckdb.connect(str(settings.snapshot_path), read_only=True) as new:
        assert new.execute("select count(*) from feeds").fetchone()[0] == 2
    assert not list(settings.snapshot_path.parent.glob("*.tmp"))


def test_the_snapshot_replaces_only_an_earlier_snapshot(tmp_path: Path) -> None:
    """`snapshot_path` naming a user's file, the config, a folder, a device, the search index or the warehouse
    itself: the copy was renamed over it (as root, /dev/null became a 19 MB file). Now each is refused with one
    line and left as it was; a new path, an earlier snapshot and one cut short are written."""
    settings = _settings(tmp_path)
    database.ensure_ready(settings)
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    index = tmp_path / "other.duckdb"
    duckdb.connect(str(index)).close()  # a DuckDB file that is no warehouse copy (as the search index is)
    with duckdb.connect(str(index)) as conn:
        conn.execute("create table meta (k varchar)")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")  # a special file of the test's own: a regression must not replace /dev/null
    for target, why in ((notes, "is not a DuckDB file"), (tmp_path / "folder", "is not a regular file"),
                        (tmp_path / "pipe", "is not a regular file"), (index, "not a copy of a newsflow warehouse"),
                        (settings.path, "is the warehouse")):
        aimed = settings.model_copy(update={"snapshot_path": target})
        with pytest.raises(snapshot.SnapshotRefused, match=why):
            snapshot.publish_snapshot(aimed)
    assert notes.read_text() == "precious" and (tmp_path / "pipe").is_fifo()
    assert index.stat().st_size < 1 << 20 and (tmp_path / "folder").is_dir()
    assert snapshot.publish_snapshot(settings) == settings.snapshot_path  # new
    assert snapshot.publish_snapshot(settings) == settings.snapshot_path  # over an earlier one
    with settings.snapshot_path.open("r+b") as f:
        f.truncate(20000)  # cut short
    assert snapshot.publish_snapshot(settings) == settings.snapshot_path
    assert snapshot.damaged(settings) is None


HOLD = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
sys.stdin.read()
"""


def test_reader_falls_back_to_the_snapshot_while_a_writer_holds_the_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    database.ensure_ready(settings)
    snapshot.publish_snapshot(settings)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.path), "rw"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with database.reader(settings, wait=0.2) as (path, conn):
            assert path == settings.snapshot_path
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0
        shutil.rmtree(settings.snapshot_path.parent)
        with pytest.raises(database.WarehouseLocked, match="no snapshot yet"):
            with database.reader(settings, wait=0.2):
                pass
    finally:
        holder.communicate("")
    with database.reader(settings) as (path, _conn):
        assert path == settings.path


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_tables_and_a_query(demo_db: Path, tmp_path: Path, fmt: str) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        done = export(conn, tmp_path / "out", tables=["articles", "syndication"], fmt=fmt)
        q = export(conn, tmp_path / "q" / f"by_feed.{fmt}", fmt=fmt,
                   query="select feed, count(*) as n from articles group by feed")
        n_articles = conn.execute("select count(*) from articles").fetchone()[0]
        with pytest.raises(ValueError, match="no such table"):
            export(conn, tmp_path / "out", tables=["nope"])
    assert [d.name for d in done] == ["articles", "syndication"]
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    with duckdb.connect() as mem:
        assert mem.execute(f"select count(*) from {reader}(?)", [str(done[0].path)]).fetchone()[0] == n_articles
        assert mem.execute(f"select sum(n) from {reader}(?)", [str(q[0].path)]).fetchone()[0] == n_articles
    assert done[0].rows == n_articles


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_streams_bounded_batches_and_loses_no_row(demo_db: Path, tmp_path: Path, fmt: str) -> None:
    """Issue 23: one Arrow batch of 1M rows passed the 2 GiB string limit. The rows cross in batches of
    `batch_rows` (Parquet: a row group each), and together they are the table, in its order."""
    import pyarrow.parquet as pq

    with duckdb.connect(str(demo_db), read_only=True) as conn:
        done = export(conn, tmp_path / "out", tables=["articles"], fmt=fmt, batch_rows=3)
        stored = conn.execute("select article_id, url, text from articles").fetchall()
        with pytest.raises(ValueError, match="batch_rows"):
            export(conn, tmp_path / "other", tables=["articles"], batch_rows=0)
    assert len(stored) > 3 * 3
    path = str(done[0].path)
    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert max(sizes) <= 3 and sum(sizes) == len(stored) and len(sizes) == -(-len(stored) // 3)
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    with duckdb.connect() as mem:
        assert mem.execute(f"select article_id, url, text from {reader}(?)", [path]).fetchall() == stored
    assert done[0].rows == len(stored)


def test_export_parquet_holds_what_duckdbs_writer_held(demo_db: Path, tmp_path: Path) -> None:
    """Parquet is written by pyarrow, batch by batch (issue 23: the in-memory DuckDB that wrote the batches grew
    with the table, 5 GB at 1M articles). Every table and view, empty ones included, reads back with the types
    and rows DuckDB's writer gave them before, tables in their order, and the counted rows are the rows written."""
    with duckdb.connect(str(demo_db), read_only=True) as conn:
        done = export(conn, tmp_path / "out", batch_rows=7)
        views = {r[0] for r in conn.execute("select view_name from duckdb_views() where not internal").fetchall()}
        for item in done:
            # The reference: what the export wrote before, DuckDB's writer on the rows as Arrow (where a JSON
            # column is text, as it is in our files).
            quoted = '"' + item.name.replace('"', '""') + '"'
            with duckdb.connect() as mem:
                ours, ref = str(item.path), str(tmp_path / "ref.parquet")
                mem.from_arrow(conn.sql(f"select * from main.{quoted}").to_arrow_table()).write_parquet(ref)
                assert (mem.execute("describe select * from read_parquet(?)", [ours]).fetchall()
                        == mem.execute("describe select * from read_parquet(?)", [ref]).fetchall()), item.name
                sums = "select count(*), sum(hash(t)) from read_parquet(?) t"
                assert mem.execute(sums, [ours]).fetchone() == mem.execute(sums, [ref]).fetchone(), item.name
                assert mem.execute("select count(*) from read_parquet(?)", [ours]).fetchone()[0] == item.rows
                if item.name not in views:  # a view's order is its plan's (not defined), a table's is kept
                    in_order = "select hash(t) from read_parquet(?) t"
                    assert mem.execute(in_order, [ours]).fetchall() == mem.execute(in_order, [ref]).fetchall()
    assert any(item.rows == 0 for item in done) and any(item.rows > 7 for item in done)


def test_export_caps_memory_by_what_it_reads(demo_db: Path) -> None:
    """The reading connection's memory is capped low for named tables (a scan streams), higher for any view (the
    default export writes them: joins and sorts spill past the cap), and left at DuckDB's limit for a user's
    query (a low cap made `limit` queries run out of memory)."""
    from flows.warehouse.export import SCAN_MEMORY, VIEW_MEMORY, bound_memory

    limit = "select current_setting('memory_limit')"
    seen = {}
    for tables, query, cap in [(["articles", "feeds"], None, SCAN_MEMORY), (None, None, VIEW_MEMORY),
                               (["articles", "syndication"], None, VIEW_MEMORY), (None, "select 1", None)]:
        # A new instance each time (the last one closed), so no setting carries over.
        with duckdb.connect(str(demo_db), read_only=True) as conn:
            before = conn.execute(limit).fetchone()[0]
            assert bound_memory(conn, tables, query) == cap
            seen[cap] = conn.execute(limit).fetchone()[0]
            assert (seen[cap] == before) == (cap is None), (tables, query)
    assert len(set(seen.values())) == 3  # three different limits


def test_export_command_writes_every_table_from_the_snapshot(demo_db: Path, tmp_path: Path) -> None:
    from flows.cli import main

    snap = tmp_path / "demo.snapshot.duckdb"
    shutil.copyfile(demo_db, snap)
    out = tmp_path / "out"
    assert main(["export", "--warehouse", str(tmp_path / "demo.duckdb"), "--snapshot", "--out", str(out)]) == 0
    names = {p.stem for p in out.iterdir()}
    assert {"articles", "duplicates", "entities", "syndication", "run_history"} <= names
    assert not {"lsh_buckets", "shingle_samples", "schema_migrations"} & names


def test_threads_opening_and_closing_the_warehouse_at_once(tmp_path: Path) -> None:
    """The ingest's writer thread and its NER pre-check open and close the file at the same time; DuckDB used to
    hand one of them an instance without its Arrow scan (`python_arrow_scan does not exist`) on register()."""
    import threading

    import pyarrow as pa

    settings = WarehouseSettings(path=tmp_path / "race.duckdb")
    with database.connect(settings):
        pass
    errors: list[str] = []

    def churn() -> None:
        for i in range(150):
            try:
                with database.connect(settings) as conn:
                    conn.register("q", pa.Table.from_pylist([{"a": i}]))
                    conn.execute("select count(*) from q").fetchall()
            except Exception as exc:  # collected: the assertion below names them
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------- whose file it is (flows/warehouse/identity.py)

_IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_OBJECT = st.tuples(st.sampled_from(("table", "view", "macro", "sequence", "type", "schema")),
                    st.one_of(st.just("main"), _IDENT), _IDENT)


def _create(conn: duckdb.DuckDBPyConnection, kind: str, schema: str, name: str) -> None:
    conn.execute(f'create schema if not exists "{schema}"')
    target = f'"{schema}"."{name}"'
    sql = {"table": f"create table if not exists {target} (id integer)",
           "view": f"create or replace view {target} as select 1 as id",
           "macro": f"create or replace macro {target}(x) as x + 1",
           "sequence": f"create sequence if not exists {target}",
           "type": f"create type {target} as enum ('a', 'b')",
           "schema": f'create schema if not exists "{name}"'}[kind]
    try:
        conn.execute(sql)
    except duckdb.CatalogException:  # the name is taken by an object of another kind: it exists all the same
        pass


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(_OBJECT, min_size=1, max_size=4))
def test_a_database_with_any_user_object_is_never_empty(objects: list[tuple[str, str, str]]) -> None:
    """Whatever a user leaves in a database, in whichever schema, it is never taken for an empty one (which
    every writer would migrate 26 tables into, and `demo --fresh` might delete)."""
    with duckdb.connect(":memory:") as conn:
        for kind, schema, name in objects:
            _create(conn, kind, schema, name)
        assume(identity.user_objects(conn))  # only `create schema main`: nothing was made
        assert identity.classify_conn(conn).kind == "foreign"


def test_classify_tells_missing_empty_newsflow_and_foreign_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert identity.classify(settings.path).kind == "missing"
    duckdb.connect(str(settings.path)).close()
    assert identity.classify(settings.path).kind == "empty"
    assert database.ensure_ready(settings)
    verdict = identity.classify(settings.path)
    assert (verdict.kind, verdict.version) == ("newsflow", len(database.migrations()))
    cut = tmp_path / "cut.duckdb"
    shutil.copyfile(settings.path, cut)
    os.truncate(cut, cut.stat().st_size // 2)
    assert identity.classify(cut).kind == "foreign" and "truncated" in identity.classify(cut).reason
    (tmp_path / "notes.duckdb").write_text("my notes\n")
    assert identity.classify(tmp_path / "notes.duckdb").kind == "foreign"
    assert identity.classify(tmp_path).kind == "foreign"


def test_a_file_duckdb_shortened_is_a_warehouse_and_one_cut_at_a_block_boundary_is_not(tmp_path: Path) -> None:
    """DuckDB drops the free blocks at the end of the file after writing a header that still counts them: such a
    file is judged from the header's free list, read from the file (no listing of every table's blocks, which
    read every text segment: 13 s and 3 GB at a million articles); a copy cut at a block boundary is truncated."""
    settings = _settings(tmp_path)
    database.ensure_ready(settings)
    with duckdb.connect(str(settings.path)) as conn:
        conn.execute("create table scratch as select range as i, md5(range::varchar) || md5(range::varchar) as s "
                     "from range(400000)")
        conn.execute("checkpoint")
        conn.execute("drop table scratch")
        conn.execute("checkpoint")
    short = identity._shortfall(settings.path)
    assert short is not None and short[2] < short[3], "DuckDB left the file as long as its header says"
    verdict = identity.classify(settings.path)
    assert (verdict.kind, verdict.version) == ("newsflow", len(database.migrations()))
    block_size, present = short[1], short[2]
    cut = tmp_path / "cut.duckdb"
    shutil.copyfile(settings.path, cut)
    os.truncate(cut, 3 * 4096 + (present - 1) * block_size)  # the last block left was in use: nothing frees it
    verdict = identity.classify(cut)
    assert verdict.kind == "foreign" and "truncated" in verdict.reason and "in use" in verdict.reason


def test_migrate_refuses_tables_outside_main_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "people.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema hr; create table hr.payroll as select 1 as id, 5000 as pay")
    with pytest.raises(database.WarehouseError, match="not a newsflow warehouse"):
        database.check_file(path, create=True, write=True)
    with duckdb.connect(str(path)) as conn:
        with pytest.raises(database.WarehouseError, match=r"it holds table hr.payroll\)"):
            database.migrate(conn)
        assert identity.user_objects(conn) == ["table hr.payroll", "schema hr"]


def test_a_newer_warehouse_is_refused_to_writers_and_read_by_readers(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert database.ensure_ready(settings)
    with duckdb.connect(str(settings.path)) as conn:
        conn.execute("insert into schema_migrations values (99, '0099_future.sql', now())")
    database.check_file(settings.path)  # `sql`, `status`, `export` read it
    with pytest.raises(database.WarehouseError, match="version 99, newer than this newsflow"):
        database.check_file(settings.path, write=True)


# ---------------------------------------------------------------- unreadable staged batches (quarantine)

def _full_settings(tmp_path: Path) -> Settings:
    config = tmp_path / "newsflow.toml"
    config.write_text(f'[warehouse]\npath = "{tmp_path / "wh.duckdb"}"\nstaging_dir = "{tmp_path / "staging"}"\n'
                      f'snapshot_path = "{tmp_path / "snap.duckdb"}"\nlock_wait_seconds = 0.5\n'
                      f'[pipeline]\nworkers = 1\nseeds_dir = "{tmp_path / "seeds"}"\n')
    return load_settings(config, env={})


def _stage(staging_dir: Path, n: int, run_id: str = "run-1") -> Path:
    batch = staging.Batch(f"20261201T000000-{run_id}-{n:04d}", run_id)
    batch.add("entries", {"feed": "f", "guid": f"g{n}", "url": f"http://127.0.0.1/{n}", "first_run_id": run_id,
                          "first_seen_at": datetime(2026, 12, 1, tzinfo=UTC)})
    return staging.write(batch, staging_dir, durable=False)


def _bad_batches(staging_dir: Path) -> dict[str, str]:
    """Three unreadable batches and two strangers; the fragment of the reason each batch is quarantined for."""
    cut = _stage(staging_dir, 2)
    data = (cut / "entries.parquet").read_bytes()
    (cut / "entries.parquet").write_bytes(data[: len(data) // 2])
    empty = _stage(staging_dir, 3)
    (empty / "entries.parquet").write_bytes(b"")
    future = _stage(staging_dir, 4)
    (future / "schema_version").write_text("99")
    (staging_dir / "old-notes").mkdir()
    (staging_dir / "old-notes" / "todo.txt").write_text("look at this\n")
    (staging_dir / "README.txt").write_text("what this folder is\n")
    return {cut.name: "entries.parquet", empty.name: "entries.parquet", future.name: "schema version 99"}


def test_an_unreadable_staged_batch_is_quarantined_and_the_rest_load(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from flows.ops import status

    settings = _full_settings(tmp_path)
    wh = settings.warehouse
    good = _stage(wh.staging_dir, 1)
    bad = _bad_batches(wh.staging_dir)
    later = _stage(wh.staging_dir, 5)
    assert database.ensure_ready(wh)
    status.show(settings)  # before the load: each unreadable batch is named, the strangers too
    out = capsys.readouterr().out
    assert "Staged batches waiting to load: 5" in out
    assert all(f"unreadable: {name}: " in out for name in bad), out
    assert "not a staged batch, left alone" in out and "old-notes" in out

    with duckdb.connect(str(wh.path)) as conn:
        conn.execute("insert into feeds (feed, url, configured_url, etag, body_hash) values ('f', 'u', 'u', 'e', 'h')")
    assert store.load_pending(settings, run_id="load-1") == (5, 0)
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert sorted(r[0] for r in conn.execute("select url from entries").fetchall()) == [
            "http://127.0.0.1/1", "http://127.0.0.1/5"]
        # Read in full by the next run, which fetches again the pages the lost batches held.
        assert conn.execute("select etag, last_modified, body_hash from feeds").fetchall() == [(None, None, None)]
        rows = conn.execute("select batch_id, path, reason, run_id from staged_quarantine order by batch_id").fetchall()
    assert [r[0] for r in rows] == sorted(bad)
    for batch_id, path, reason, run_id in rows:
        assert bad[batch_id] in reason and run_id == "load-1"
        assert Path(path) == wh.staging_dir / staging.QUARANTINE / batch_id and Path(path).is_dir()
    assert not good.exists() and not later.exists()
    assert (wh.staging_dir / "old-notes" / "todo.txt").exists() and (wh.staging_dir / "README.txt").exists()

    # The next load is not blocked, and loads what is staged after them.
    _stage(wh.staging_dir, 6)
    assert store.load_pending(settings) == (1, 0)
    status.show(settings)
    out = capsys.readouterr().out
    assert "Quarantined staged batches" in out and all(name in out for name in bad)
    assert "Staged batches waiting to load: 0" in out
    with database.connect(wh) as conn:
        [result] = [r for r in checks.run_checks(conn, staging_dir=wh.staging_dir) if r.name == "quarantined_batches"]
        assert result.offending_rows == 3 and bad[result.sample[0]["batch_id"]] in result.sample[0]["reason"]
    # Dealt with (deleted, or repaired and moved back): the check holds again.
    shutil.rmtree(wh.staging_dir / staging.QUARANTINE)
    with database.connect(wh) as conn:
        [result] = [r for r in checks.run_checks(conn, staging_dir=wh.staging_dir) if r.name == "quarantined_batches"]
        assert result.offending_rows == 0


def test_a_batch_that_fails_on_its_own_data_is_quarantined_and_the_rest_load(tmp_path: Path) -> None:
    """A staged batch the loader cannot take (here a run's count past the column's range, as a tampered or
    older-version file may hold; before, a feed dated 0001-01-01 did it) failed every load, and every later run
    loaded it first: now it is rolled back, moved aside with its reason and the batches after it load. A fault that
    may pass (the warehouse held, a full disk) still leaves it staged (test_locking.py)."""
    settings = _full_settings(tmp_path)
    wh = settings.warehouse
    assert database.ensure_ready(wh)
    first = _stage(wh.staging_dir, 1)
    bad = staging.Batch("20261201T000000-run-1-0002", "run-1")
    bad.add("entries", {"feed": "f", "guid": "g2", "url": "http://127.0.0.1/2", "first_run_id": "run-1",
                        "first_seen_at": datetime(2026, 12, 1, tzinfo=UTC)})
    bad.add("runs", {"run_id": "run-1", "flow": "ingest", "started_at": datetime(2026, 12, 1, tzinfo=UTC),
                     "status": "completed", "feeds_total": 2**40})
    bad_path = staging.write(bad, wh.staging_dir, durable=False)
    later = _stage(wh.staging_dir, 3)
    assert store.load_pending(settings, run_id="load-1") == (3, 0)
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert sorted(r[0] for r in conn.execute("select url from entries").fetchall()) == [
            "http://127.0.0.1/1", "http://127.0.0.1/3"]  # nothing of the bad batch: its transaction rolled back
        assert conn.execute("select count(*) from runs").fetchone() == (0,)
        [(batch_id, reason)] = conn.execute("select batch_id, reason from staged_quarantine").fetchall()
    assert batch_id == bad_path.name, batch_id
    assert reason.startswith("load failed: ConversionException: ") and "feeds_total" in reason, reason
    assert [p.name for p in staging.quarantined(wh.staging_dir)] == [bad_path.name]
    assert not first.exists() and not later.exists()


def test_the_load_flow_quarantines_and_status_shows_a_run_that_failed_before_loading(
        tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real flows: `load` moves an unreadable batch aside, loads the good one and fails the check;
    an ingest that fails before its first load leaves a `failed` run with its reason for `newsflow status`."""
    from flows.cli import main
    from flows.run.ingest import ingest
    from flows.run.loader import load

    settings = _full_settings(tmp_path)
    wh = settings.warehouse
    _stage(wh.staging_dir, 1)
    bad = _bad_batches(wh.staging_dir)
    summary = load(config=str(settings.config_path))
    assert summary["status"] == "completed" and summary["checks_failed"] == 1, summary
    assert (summary["batches_loaded"], summary["batches_quarantined"]) == (1, len(bad)), summary
    assert sorted(p.name for p in staging.quarantined(wh.staging_dir)) == sorted(bad)
    with pytest.raises(ValueError, match="unknown feed name"):
        ingest(config=str(settings.config_path), feeds=["nosuchfeed"])
    capsys.readouterr()
    assert main(["status", "--config", str(settings.config_path)]) == 0
    out = capsys.readouterr().out
    assert "│ failed" in out and "ValueError: unknown feed name(s): nosuchfee" in out, out
    assert "quarantined_batches" in out and all(name in out for name in bad)


def test_a_batch_staged_beside_the_file_loads_with_a_config_that_stages_elsewhere(tmp_path: Path) -> None:
    """Until the commands' runs kept the config's staging folder they staged beside the file (`<stem>.staging/`),
    as a --warehouse run still does: such a batch is the same warehouse's and loads by the next run."""
    settings = _full_settings(tmp_path)  # staging_dir = <tmp>/staging, the file <tmp>/wh.duckdb
    wh = settings.warehouse
    assert database.ensure_ready(wh)
    beside = tmp_path / "wh.staging"
    left = _stage(beside, 7)
    assert store.load_pending(settings, run_id="load-1") == (1, 0)
    with duckdb.connect(str(wh.path), read_only=True) as conn:
        assert conn.execute("select url from entries").fetchall() == [("http://127.0.0.1/7",)]
    assert not left.exists() and not staging.pending(beside) and not staging.pending(wh.staging_dir)

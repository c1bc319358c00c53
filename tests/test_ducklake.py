"""The warehouse on DuckLake: real lakes in tmp_path (a DuckDB, SQLite or PostgreSQL catalog and a folder of
Parquet files), the real loader, flow and CLI; compared with the file backend on the same demo snapshot.

Covers: flows.warehouse.lake
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from demo_warehouse import demo_filled, run_ingest

from flows.core.records import Document
from flows.core.sections import DedupSettings
from flows.core.settings import WarehouseSettings, load_settings
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.run.documents import signature_fields
from flows.warehouse import database, lake, writer
from flows.warehouse.staging import Batch, stable_key

DEDUP = DedupSettings()
DATA = Path(__file__).parent / "data" / "dedup"


def _lake(tmp_path: Path, catalog: str = "catalog.ducklake", **kw: Any) -> WarehouseSettings:
    prefix = "sqlite:" if catalog.endswith(".sqlite") else ""
    return WarehouseSettings(backend="ducklake", catalog=prefix + str(tmp_path / catalog), path=tmp_path / "wh.duckdb",
                             staging_dir=tmp_path / "staging", **kw)


def _batch(batch_id: str = "b-0001") -> Batch:
    """A batch of real stories, one copy of the first and entities, with feed state and entries."""
    stories = sorted((DATA / "stories").glob("*.txt"))[:3]
    texts = [p.read_text() for p in stories] + [stories[0].read_text()]
    docs = [Document(url=f"https://outlet.example/{n}", text=t, body_source="extracted", feed="f",
                     published_at=datetime(2026, 11, 1, n, tzinfo=UTC), ner_pipeline="test-1",
                     mentions=[{"name": f"Person {n % 3}", "label": "PERSON", "mentions": 2}],
                     **signature_fields(t, DEDUP)) for n, t in enumerate(texts)]
    now = datetime(2026, 11, 2, tzinfo=UTC)
    batch = Batch(batch_id, "run-1")
    batch.add("docs", *docs)
    batch.add("runs", {"run_id": "run-1", "flow": "ingest", "started_at": now, "status": "running"})
    batch.add("feeds", {"feed": "f", "url": "http://f/", "configured_url": "http://f/", "updated_at": now})
    batch.add("entries", *[{"feed": "f", "guid": d.url, "url": d.url, "first_seen_at": now, "first_run_id": "run-1"}
                           for d in docs])
    batch.add("page_fetches", *[{"url": d.url, "run_id": "run-1", "outcome": "extracted", "fetched_at": now}
                                for d in docs])
    return batch


def _key_duplicates(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """For every key of writer.KEYS, how many rows share a key value with another row."""
    out = {}
    for table, keys in writer.KEYS.items():
        for key in keys:
            cols = ", ".join(key)
            n = conn.execute(f"select count(*) - count(distinct ({cols})) from {table}").fetchone()[0]
            out[f"{table}({cols})"] = n
    return out


# ---------------------------------------------------------------- extensions and migrations

def test_extensions_come_from_the_wheels_and_are_never_fetched(tmp_path: Path) -> None:
    path = lake.extension_file("ducklake")
    assert path.is_file() and f"v{duckdb.__version__}" in str(path)
    with database.connect(_lake(tmp_path)) as conn:
        settings = dict(conn.execute("select name, value from duckdb_settings() where name like 'auto%extensions'")
                        .fetchall())
        assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
        # Nothing was installed into DuckDB's extension folder: the lake runs on the files loaded by path.
        installed = conn.execute("select extension_name, install_path from duckdb_extensions() "
                                 "where loaded and extension_name = 'ducklake'").fetchall()
        assert installed == [("ducklake", "")] or Path(installed[0][1]) == path


def test_the_loader_keys_are_the_file_backend_constraints(tmp_path: Path) -> None:
    """writer.KEYS, which the loader enforces on a lake, lists exactly the keys the DuckDB file declares, but for
    writer.UNDECLARED_KEYS (the loader keeps those on both backends)."""
    with database.connect(WarehouseSettings(path=tmp_path / "file.duckdb")) as conn:
        database.migrate(conn)
        rows = conn.execute("select table_name, constraint_column_names from duckdb_constraints() "
                            "where constraint_type in ('PRIMARY KEY', 'UNIQUE')").fetchall()
    declared: dict[str, set[tuple[str, ...]]] = {}
    for table, cols in rows:
        declared.setdefault(table, set()).add(tuple(cols))
    assert declared == {t: set(keys) for t, keys in writer.KEYS.items() if t not in writer.UNDECLARED_KEYS}
    assert writer.UNDECLARED_KEYS <= set(writer.KEYS)


def test_migrations_lose_only_what_ducklake_refuses(tmp_path: Path) -> None:
    sql = lake.lake_sql("create table t (a varchar primary key, -- the key\n b int not null unique, "
                           "c int default 0, primary key (a, b), unique (b, c));\ncreate index i on t (b);")
    assert "primary" not in sql and "unique" not in sql and "index" not in sql
    assert "b int not null" in sql and "c int default 0" in sql
    settings = _lake(tmp_path)
    with database.connect(settings) as conn:
        applied = database.migrate(conn)
        assert applied == [name for _, name, _ in database.migrations()]
        assert database.migrate(conn) == []  # a second open applies nothing
        views = {r[0] for r in conn.execute(
            "select view_name from duckdb_views() where database_name = 'lake'").fetchall()}
    assert views == {p.stem for p in database.view_files()}
    # Every table went into the lake with the same columns as in the file.
    with database.connect(WarehouseSettings(path=tmp_path / "file.duckdb")) as conn:
        database.migrate(conn)
        file_cols = conn.execute("select table_name, column_name, data_type from information_schema.columns "
                                 "where table_catalog = current_database() order by all").fetchall()
    with database.connect(settings, read_only=True) as conn:
        lake_cols = conn.execute("select table_name, column_name, data_type from information_schema.columns "
                                 "where table_catalog = current_database() order by all").fetchall()
    assert lake_cols == file_cols


# ---------------------------------------------------------------- the loader enforces the keys

@pytest.mark.parametrize("catalog", ["catalog.ducklake", "catalog.sqlite"])
def test_loading_a_batch_twice_stores_nothing_twice(tmp_path: Path, catalog: str) -> None:
    settings = _lake(tmp_path, catalog)
    batch = _batch()
    with database.connect(settings) as conn:
        database.migrate(conn)
        first = writer.load_batch(conn, batch, DEDUP)
        counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in writer.KEYS}
        again = writer.load_batch(conn, batch, DEDUP)
        # A state row loaded again with new values replaces the old one instead of adding a second.
        later = _batch("b-0002")
        later.tables["runs"][0]["status"] = "completed"
        writer.load_batch(conn, later, DEDUP)
        assert {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in writer.KEYS} == counts
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        assert set(_key_duplicates(conn).values()) == {0}
    assert (first.new, first.exact, first.known) == (3, 1, 0)
    assert (again.new, again.known) == (0, 4)
    assert counts["articles"] == 3 and counts["duplicates"] == 1 and counts["entities"] == 3


def test_upsert_keeps_the_first_or_the_latest_row_of_a_key(tmp_path: Path) -> None:
    """The statements that replace `insert or ignore/replace` also hold where no key constraint exists."""
    with database.connect(_lake(tmp_path)) as conn:
        database.migrate(conn)
        t = datetime(2026, 1, 1, tzinfo=UTC)
        writer._insert(conn, "insert or ignore", "entities", [
            {"entity_id": 1, "name": "A", "label": "PERSON", "first_seen_at": t},
            {"entity_id": 1, "name": "A", "label": "PERSON", "first_seen_at": t.replace(year=2027)}])
        writer._insert(conn, "insert or ignore", "entities", [  # same (name, label), other id: the unique key
            {"entity_id": 2, "name": "A", "label": "PERSON", "first_seen_at": t}])
        writer._insert(conn, "insert or replace", "feeds", [
            {"feed": "f", "url": "u1", "configured_url": "u", "title": "old"},
            {"feed": "f", "url": "u2", "configured_url": "u"}])
        writer._insert(conn, "insert or replace", "feeds", [{"feed": "f", "url": "u3", "configured_url": "u"}])
        assert conn.execute("select entity_id, first_seen_at from entities").fetchall() == [(1, t)]
        # Replace updates the columns given and keeps the others, as DuckDB's `insert or replace` does.
        assert conn.execute("select url, title from feeds").fetchall() == [("u3", None)]


@pytest.mark.parametrize("backend", ["duckdb", "ducklake"])
def test_insert_or_ignore_keeps_the_stored_row_on_both_backends(tmp_path: Path, backend: str) -> None:
    """On a file, a table of one key takes DuckDB's own `or ignore` (its key's index), tables of two keys and a lake
    the anti-joins: either way a stored key keeps its first row and a new key is added, in one transaction too."""
    settings = _lake(tmp_path) if backend == "ducklake" else WarehouseSettings(
        path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging")
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def fetch(fetch_id: str, outcome: str) -> dict[str, Any]:
        return {"fetch_id": fetch_id, "run_id": fetch_id.split(":")[0], "feed": "f", "url": "u", "outcome": outcome,
                "fetched_at": t}

    with database.connect(settings) as conn:
        database.migrate(conn)
        writer._insert(conn, "insert or ignore", "feed_fetches", [fetch("r1:f", "ok")])
        with database.transaction(conn):
            writer._insert(conn, "insert or ignore", "feed_fetches", [fetch("r1:f", "failed"), fetch("r2:f", "ok")])
            writer._insert(conn, "insert or ignore", "entities", [
                {"entity_id": 1, "name": "A", "label": "PERSON", "first_seen_at": t}])
            writer._insert(conn, "insert or ignore", "entities", [  # the unique key (name, label), another id
                {"entity_id": 2, "name": "A", "label": "PERSON", "first_seen_at": t}])
        assert conn.execute("select fetch_id, outcome from feed_fetches order by 1").fetchall() == [
            ("r1:f", "ok"), ("r2:f", "ok")]
        assert conn.execute("select entity_id from entities").fetchall() == [(1,)]


def _article(article_id: int, url: str) -> dict[str, Any]:
    return {**{c: None for c in writer._ARTICLE_COLUMNS}, "article_id": article_id, "url": url, "text": "t",
            "text_hash": f"h{article_id}", "body_source": "extracted", "n_shingles": 0, "n_samples": 0,
            "run_id": "r", "loaded_at": datetime.now(UTC), "is_seed": False}


@pytest.mark.parametrize("backend", ["duckdb", "ducklake"])
def test_articles_inserted_on_their_id_alone_raise_on_a_stored_url_and_load_again_checked(
        tmp_path: Path, backend: str) -> None:
    """The loader's articles on a file skip on the id's index alone (`on_primary`): a stored id keeps its row; a
    URL stored under another id, which the loader rules out first, raises _KeyClashError, and the same rows with
    every key checked (what load_batch does next, and what a lake always does) skip it."""
    settings = _lake(tmp_path) if backend == "ducklake" else WarehouseSettings(
        path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging")
    with database.connect(settings) as conn:
        database.migrate(conn)
        writer._insert(conn, "insert or ignore", "articles", [_article(7, "https://x/7")])
        with database.transaction(conn):
            writer._insert(conn, "insert or ignore", "articles", [_article(7, "https://x/7b"),
                                                                  _article(9, "https://x/9")], on_primary=True)
        clash = [_article(10, "https://x/7"), _article(11, "https://x/11")]
        if backend == "duckdb":
            with pytest.raises(writer._KeyClashError, match="url"), database.transaction(conn):
                writer._insert(conn, "insert or ignore", "articles", clash, on_primary=True)
        else:  # no index on a lake: the anti-joins, whatever the caller knows
            with database.transaction(conn):
                writer._insert(conn, "insert or ignore", "articles", clash, on_primary=True)
        with database.transaction(conn):
            writer._insert(conn, "insert or ignore", "articles", clash)
        assert conn.execute("select article_id, url from articles order by 1").fetchall() == [
            (7, "https://x/7"), (9, "https://x/9"), (11, "https://x/11")]


@pytest.mark.parametrize("backend", ["duckdb", "ducklake"])
def test_a_batch_url_stored_under_another_id_is_known_and_the_load_goes_on(tmp_path: Path, backend: str) -> None:
    """Article ids are the URL's hash, but a row stored otherwise (by hand, by another tool) must not end a load:
    its URL is found by the loader's lookup (`known`), and an id taken by another URL skips that article, as the
    anti-joins always did."""
    settings = _lake(tmp_path) if backend == "ducklake" else WarehouseSettings(
        path=tmp_path / "wh.duckdb", staging_dir=tmp_path / "staging")
    batch = _batch()
    urls = [d.url for d in batch.docs]
    taken = stable_key(urls[1])
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        writer._insert(conn, "insert or ignore", "articles", [_article(12345, urls[0]),
                                                              _article(taken, "https://elsewhere.example/")])
        result = writer.load_batch(conn, batch, DEDUP)
        # The last document copies the first, whose stored row has no index rows: new too.
        assert (result.new, result.known) == (3, 1)
        assert conn.execute("select article_id, url from articles order by url").fetchall() == sorted(
            [(12345, urls[0]), (taken, "https://elsewhere.example/"), (stable_key(urls[2]), urls[2]),
             (stable_key(urls[3]), urls[3])], key=lambda r: r[1])


# ---------------------------------------------------------------- readers while a load runs

def test_a_reader_sees_consistent_data_while_a_load_runs(tmp_path: Path) -> None:
    settings = _lake(tmp_path, "catalog.sqlite")
    database.ensure_ready(settings)
    with database.connect(settings) as conn:
        writer.load_batch(conn, _batch(), DEDUP)
    with database.connect(settings) as conn, database.connect(settings, read_only=True) as reader:
        def seen() -> tuple[int, int]:
            return reader.execute("select (select count(*) from articles), (select count(*) from duplicates)"
                                  ).fetchone()

        before = seen()
        conn.execute("begin transaction")
        writer._insert(conn, "insert or ignore", "articles", [
            {**{c: None for c in writer._ARTICLE_COLUMNS}, "article_id": 7, "url": "https://x/7", "text": "t",
             "text_hash": "h", "body_source": "extracted", "n_shingles": 0, "n_samples": 0, "run_id": "r",
             "loaded_at": datetime.now(UTC), "is_seed": False}])
        writer._insert(conn, "insert or ignore", "duplicates", [
            {"url": "https://x/8", "duplicate_of": 7, "method": "exact", "criterion": "text_hash",
             "similarity": 1.0, "seen_at": datetime.now(UTC), "run_id": "r"}])
        assert seen() == before  # the open load is invisible, not half-visible
        conn.execute("commit")
        # The same open reader sees the whole load at once, with no snapshot copy and no reconnect.
        assert seen() == (before[0] + 1, before[1] + 1)


def test_a_commit_lost_to_another_writer_is_a_conflict(tmp_path: Path) -> None:
    settings = _lake(tmp_path, "catalog.sqlite")
    database.ensure_ready(settings)
    with database.connect(settings) as a, database.connect(settings) as b:
        a.execute("insert into feeds (feed, url, configured_url) values ('f', 'u', 'u')")
        a.execute("begin transaction")
        b.execute("begin transaction")
        a.execute("update feeds set title = 'a'")
        b.execute("update feeds set title = 'b'")
        a.execute("commit")
        with pytest.raises(duckdb.Error) as caught:
            b.execute("commit")
        assert lake.is_conflict(caught.value)


# ---------------------------------------------------------------- the demo, end to end

@pytest.fixture(scope="module")
def lake_demo(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One demo ingest into a lake with a local DuckDB catalog; its config and the environment that selects it."""
    tmp = tmp_path_factory.mktemp("lake-demo")
    env = {"NEWSFLOW_WAREHOUSE__BACKEND": "ducklake", "NEWSFLOW_WAREHOUSE__CATALOG": str(tmp / "lake.ducklake"),
           "NEWSFLOW_WAREHOUSE__DATA_PATH": str(tmp / "lake-files")}
    with LocalServer(DEMO_DATA) as server:
        db = tmp / "demo.duckdb"
        config = demo_config(server, db, tmp)
        summary = run_ingest(config, db, env=env)
    assert summary["status"] == "completed", summary
    assert summary.get("checks_failed", 0) == 0
    assert not db.exists() and not (tmp / "demo.snapshot.duckdb").exists()  # no file, no snapshot copy
    return config, env


def _demo_rows(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    def strip(url: str) -> str:
        return re.sub(r"^http://127\.0\.0\.1:\d+", "", url)

    articles = sorted((strip(u), t, b, s) for u, t, b, s in conn.execute(
        "select url, text_hash, body_source, is_seed from articles").fetchall())
    dups = sorted((strip(u), strip(o), m) for u, o, m in conn.execute(
        "select d.url, a.url, d.method from duplicates d join articles a on a.article_id = d.duplicate_of"
    ).fetchall())
    ents = sorted((strip(u), n, lab, m) for u, n, lab, m in conn.execute(
        "select a.url, e.name, e.label, ae.mentions from article_entities ae join articles a using (article_id) "
        "join entities e using (entity_id)").fetchall())
    return {"articles": articles, "duplicates": dups, "entities": ents}


def test_demo_ingest_gives_the_same_warehouse_as_the_file(lake_demo: tuple[Path, dict[str, str]],
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    config, env = lake_demo
    settings = load_settings(config, env=env).warehouse
    with duckdb.connect(str(demo_filled(tmp_path_factory)), read_only=True) as conn:
        expected = _demo_rows(conn)
    with database.connect(settings, read_only=True) as conn:
        got = _demo_rows(conn)
        assert set(_key_duplicates(conn).values()) == {0}
    assert len(got["articles"]) == 17 and len(got["duplicates"]) == 5 and len(got["entities"]) > 100
    assert got == expected


def test_sql_status_check_and_export_read_the_lake(lake_demo: tuple[Path, dict[str, str]], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    config, env = lake_demo
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["sql", "--config", str(config), "--format", "csv",
                 "select count(*) as n from duplicates where method = 'near'"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == ["n", "4"] and "snapshot" not in out.err
    assert main(["sql", "--config", str(config), "select * from syndication"]) == 0
    assert main(["sql", "--config", str(config), "delete from articles"]) == 2  # still read-only
    assert main(["status", "--config", str(config)]) == 0
    assert "Last runs" in capsys.readouterr().out
    assert main(["check", "--config", str(config)]) == 0
    assert main(["export", "articles", "--config", str(config), "--format", "parquet", "--out",
                 str(tmp_path / "out")]) == 0
    assert duckdb.sql(f"select count(*) from '{tmp_path / 'out'}/*.parquet'").fetchone()[0] == 17


def test_a_missing_lake_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    monkeypatch.setenv("NEWSFLOW_WAREHOUSE__BACKEND", "ducklake")
    monkeypatch.setenv("NEWSFLOW_WAREHOUSE__CATALOG", str(tmp_path / "none.ducklake"))
    assert main(["sql", "select 1"]) == 2
    assert "no lake yet" in capsys.readouterr().err
    assert not (tmp_path / "none.ducklake").exists()


# ---------------------------------------------------------------- a PostgreSQL catalog

def test_a_postgres_catalog_takes_two_writers(tmp_path: Path, postgres: Any) -> None:
    settings = WarehouseSettings(backend="ducklake", catalog="postgres:" + postgres.get_uri(),
                                 data_path=str(tmp_path / "files"), path=tmp_path / "wh.duckdb")
    assert database.ensure_ready(settings)
    with database.connect(settings) as a, database.connect(settings) as b:
        writer.load_batch(a, _batch(), DEDUP)
        writer.load_batch(b, _batch("b-0002"), DEDUP)  # the same documents from another writer: all known
        writer._insert(b, "insert or replace", "feeds", [{"feed": "g", "url": "u", "configured_url": "u"}])
        for conn in (a, b):
            assert conn.execute("select count(*) from articles").fetchone()[0] == 3
            assert conn.execute("select feed from feeds order by 1").fetchall() == [("f",), ("g",)]
            assert set(_key_duplicates(conn).values()) == {0}
    assert list((tmp_path / "files").rglob("*.parquet"))  # the data went to the folder, not the catalog


def test_stage_only_reads_a_postgres_lake_before_and_after_the_first_load(tmp_path: Path, postgres: Any) -> None:
    """A shard run reads hints from the lake itself, read-only; before the first load there is no lake yet."""
    from flows.core.errors import WarehouseMissing
    from flows.core.settings import PROJECT_ROOT
    from flows.warehouse import runstate, store

    wh = WarehouseSettings(backend="ducklake", catalog="postgres:" + postgres.get_uri(),
                           data_path=str(tmp_path / "files"), path=tmp_path / "wh.duckdb",
                           staging_dir=tmp_path / "staging")
    shard = load_settings(PROJECT_ROOT / "config" / "newsflow.toml", env={}).model_copy(update={"warehouse": wh})
    docs = _batch().tables["docs"]
    with pytest.raises(WarehouseMissing, match="no lake yet"):
        database.check_lake(wh)
    database.check_lake(wh, create=True)  # `newsflow fanout` and `ingest --stage-only` may start now
    assert runstate.read_feed_states(shard, read_only=True) == {}
    assert runstate.known_urls(shard, [docs[0].url], read_only=True) is None
    assert store.precheck(shard, docs, read_only=True) == [False] * 4
    with database.connect(wh) as conn:  # the first load: what the loader does
        database.migrate(conn)
        writer.load_batch(conn, _batch(), DEDUP)
    assert set(runstate.read_feed_states(shard, read_only=True)) == {"f"}
    assert runstate.known_urls(shard, [docs[0].url, "https://outlet.example/new"], read_only=True) == {docs[0].url}
    assert store.precheck(shard, docs, read_only=True) == [True] * 4  # all stored: no NER for them
    assert not list((tmp_path / "staging").glob("*"))  # the shard wrote nothing


def test_catalog_passwords_are_masked_in_messages() -> None:
    assert lake.display_name("postgres:dbname=n host=h password=s3cret user=u") == (
        "postgres:dbname=n host=h password=*** user=u")
    assert lake.display_name("postgres:postgresql://u:s3cret@db.internal:5432/n") == (
        "postgres:postgresql://***@db.internal:5432/n")
    assert lake.display_name("warehouse/newsflow.ducklake") == "warehouse/newsflow.ducklake"


def test_reprocess_runs_on_the_lake_and_changes_nothing_with_the_same_settings(
        lake_demo: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """`newsflow reprocess` re-decides dedup and re-tags every article on a lake like on the file; with the
    settings the lake was loaded with, the same warehouse comes out and every check still holds."""
    from flows.cli import main

    config, env = lake_demo
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(config, env=env).warehouse
    with database.connect(settings, read_only=True) as conn:
        before = _demo_rows(conn)
    assert main(["reprocess", "--config", str(config), "--step", "dedup", "--step", "entities", "--all"]) == 0
    with database.connect(settings, read_only=True) as conn:
        assert _demo_rows(conn) == before
        assert set(_key_duplicates(conn).values()) == {0}
    assert main(["check", "--config", str(config)]) == 0


@pytest.mark.parametrize("catalog", ["catalog.ducklake", "catalog.sqlite"])
def test_reading_a_lake_creates_nothing(tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`status`, `sql` and `check_lake` on a lake whose data folder does not exist (a lake with no data file yet,
    or one whose files are elsewhere) make no `<catalog>.files/` folder: read-only commands create nothing."""
    import shutil

    from flows.cli import main

    settings = _lake(tmp_path, catalog)
    assert database.ensure_ready(settings)
    shutil.rmtree(settings.lake_data_path)
    config = tmp_path / "lake.toml"
    config.write_text(f'[warehouse]\nbackend = "ducklake"\ncatalog = "{settings.catalog}"\n'
                      f'staging_dir = "{tmp_path / "staging"}"\n')
    monkeypatch.chdir(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if not p.name.endswith(("-shm", "-wal"))}
    assert main(["status", "--config", str(config)]) == 0, capsys.readouterr().err
    assert main(["sql", "--config", str(config), "select count(*) from articles"]) == 0, capsys.readouterr().err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if not p.name.endswith(("-shm", "-wal"))}
    assert after == before


_BAR_PROBE = """
import sys, duckdb
from flows.core.settings import WarehouseSettings
from flows.warehouse import database
root = sys.argv[1]
s = (WarehouseSettings(backend="ducklake", catalog=root + "/catalog.ducklake", path=root + "/wh.duckdb",
                       staging_dir=root + "/staging") if sys.argv[2] == "ducklake" else
     WarehouseSettings(path=root + "/wh.duckdb", staging_dir=root + "/staging"))
database.ensure_ready(s)
bar = "select current_setting('enable_progress_bar')"
seen = [duckdb.connect().execute(bar).fetchone()[0]]
for read_only in (False, True):
    with database.connect(s, read_only=read_only) as conn:
        seen.append(conn.execute(bar).fetchone()[0])
with database.reader(s) as (_path, conn):
    seen.append(conn.execute(bar).fetchone()[0])
print(*seen)
"""


@pytest.mark.parametrize("backend", ["file", "ducklake"])
def test_no_connection_of_ours_draws_duckdbs_progress_bar(tmp_path: Path, backend: str) -> None:
    """DuckDB's progress bar writes to stdout (past 2 s of a query): it landed inside `newsflow sql --format
    csv|json` results. Every connection the warehouse module opens has it off, on both backends, to write or read.
    In a process of its own, as a command runs: under pytest DuckDB starts with the bar off."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", _BAR_PROBE, str(tmp_path), backend], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # DuckDB's own default first (on: so this test can fail), then write, read-only and reader connections.
    assert done.stdout.split() == ["True", "False", "False", "False"], done.stdout


_SPILL = "select count(*) from (select md5(range::varchar) as h from range(3000000) order by h)"


def _spill_dir(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("select current_setting('temp_directory')").fetchone()[0])


@pytest.mark.parametrize("backend", ["file", "ducklake"])
def test_a_reader_that_cannot_write_the_warehouse_folder_still_spills(tmp_path: Path, backend: str) -> None:
    """A query past `memory_limit` spills to disk. DuckDB's place for it is `<file>.tmp` beside the warehouse file,
    which a reader with read-only access to the folder cannot create (every such query failed, a default export's
    views among them), and `.tmp` in the working directory for a lake. Those connections get a temp folder of their
    own, removed at close; the folder is made unwritable here with the immutable flag (root ignores modes)."""
    import shutil
    import tempfile

    if backend == "ducklake":
        settings = _lake(tmp_path)
        assert database.ensure_ready(settings)
        frozen = None
    else:
        settings = WarehouseSettings(path=tmp_path / "wh" / "wh.duckdb", staging_dir=tmp_path / "staging")
        assert database.ensure_ready(settings)
        with database.connect(settings, read_only=True) as conn:  # a folder the reader can write: DuckDB's place
            assert _spill_dir(conn) == f"{settings.path}.tmp"
        frozen = settings.path.parent
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(frozen)]).returncode != 0:
            pytest.skip("chattr +i is not available here (root on ext4 has it)")
    try:
        if frozen is not None:
            assert not os.access(frozen, os.W_OK)
        with database.connect(settings, read_only=True) as conn:
            conn.execute("set memory_limit = '100MB'")
            database.restrict_files(conn, [tmp_path])
            assert conn.execute(_SPILL).fetchone()[0] == 3_000_000
            private = _spill_dir(conn)
            assert Path(private).parent == Path(tempfile.gettempdir())
            assert Path(private).name.startswith("newsflow-spill-")
        assert not Path(private).exists()
    finally:
        if frozen is not None:
            subprocess.run(["chattr", "-i", str(frozen)], check=True)

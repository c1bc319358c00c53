"""The ingest flow end to end: demo snapshot on 127.0.0.1, real DuckDB file, real Prefect API, real process pool.

Covers: flows.run.ingest, flows.run.modes, flows.run.finish, flows.run.tasks
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from flows.core.settings import Settings
from flows.ops.localserver import LocalServer
from flows.run.ingest import ingest
from flows.warehouse.database import connect
from flows.warehouse.export import read_raw_html

SEED_URL = "seed:000_e64399ec47401f51.txt"
DATA_TABLES = ("articles", "duplicates", "entities", "article_entities", "entries", "lsh_buckets",
               "shingle_samples", "page_fetches", "raw_archive", "feeds")


def _q(settings: Settings, sql: str, params: Any = None) -> list[tuple]:
    with connect(settings.warehouse, read_only=True) as conn:
        return conn.execute(sql, params).fetchall()


def _counts(settings: Settings) -> dict[str, int]:
    return {t: _q(settings, f"select count(*) from {t}")[0][0] for t in (*DATA_TABLES, "runs", "feed_fetches")}


@pytest.fixture(scope="module")
def demo_run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One demo ingest, then an identical second run; both summaries and the row counts after each."""
    from flows.core.settings import load_settings
    from flows.ops.demo import DEMO_DATA, demo_config

    tmp = tmp_path_factory.mktemp("flow")
    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, tmp / "wh" / "demo.duckdb", tmp)
        settings = load_settings(config, env={})
        first = ingest(config=str(config))
        after_first = _counts(settings)
        second = ingest(config=str(config))
        after_second = _counts(settings)
    return settings, server, first, second, after_first, after_second


def test_run_completes_and_counts(demo_run: Any) -> None:
    settings, _server, first, _second, counts, _ = demo_run
    assert first["status"] == "completed"
    assert first["feeds_ok"] == 5 and first["feeds_failed"] == 2
    assert first["articles_new"] == 17  # 15 new stories + the dead link's fallback + the seed
    assert first["duplicates_exact"] == 1 and first["duplicates_near"] == 4
    assert counts["runs"] == 1
    assert _q(settings, "select status from runs")[0][0] == "completed"


def test_syndicated_copies_name_the_seed(demo_run: Any) -> None:
    settings = demo_run[0]
    rows = _q(settings, """
        select regexp_extract(d.url, 'pages/(.*)\\.html', 1), d.method, a.url
        from duplicates d join articles a on a.article_id = d.duplicate_of order by 1""")
    assert {r[0]: (r[1], r[2]) for r in rows} == {
        "harbour-herald/xi-moscow-visit-putin-wang-yi": ("near", SEED_URL),
        "meridian-post/xi-jinping-moscow-putin-wang-yi-kremlin": ("near", SEED_URL),
        "meridian-sunday/xi-jinping-moscow-putin-wang-yi-kremlin": ("exact", SEED_URL),
        "northgate-courier/xi-jinping-plans-moscow-trip": ("near", SEED_URL),
        "valley-ledger/putin-receives-wang-yi-peace-initiative": ("near", SEED_URL),
    }


def test_same_topic_stories_are_kept(demo_run: Any) -> None:
    settings = demo_run[0]
    urls = {r[0] for r in _q(settings, "select url from articles")}
    for page in ("analysis-china-russia-partnership-limits", "kremlin-talks-wang-yi-warm-words",
                 "western-diplomats-cool-on-china-peace-plan"):
        assert any(page in u for u in urls), page


def test_broken_and_missing_feeds_are_recorded(demo_run: Any) -> None:
    settings = demo_run[0]
    rows = dict((f, (o, e, s)) for f, o, e, s in _q(
        settings, "select feed, outcome, error, http_status from feed_fetches where outcome = 'failed'"))
    broken = [v for k, v in rows.items() if "roken" in k]
    gone = [v for k, v in rows.items() if "roken" not in k]
    assert broken and broken[0][1] == "not_a_feed"
    assert gone and gone[0][1:] == ("http_404", 404)
    failing = _q(settings, "select count(*) from feeds where consecutive_failures = 1 and last_error is not null")
    assert failing[0][0] == 2


def test_dead_link_falls_back_to_the_feed_summary(demo_run: Any) -> None:
    settings = demo_run[0]
    [(source, reason, text)] = _q(settings, "select body_source, fallback_reason, text from articles "
                                            "where url like '%missing-story%'")
    assert source == "feed_summary" and reason.startswith("http_404")
    assert "Rotterdam" in text
    [(outcome, error)] = _q(settings, "select outcome, error from page_fetches where url like '%missing-story%'")
    assert (outcome, error) == ("fallback", "http_404")


def test_entities_are_normalised(demo_run: Any) -> None:
    settings = demo_run[0]
    people = {r[0] for r in _q(settings, "select name from entities where label = 'PERSON'")}
    assert {"Vladimir Putin", "Xi Jinping", "Wang Yi"} <= people
    seed_people = {r[0] for r in _q(settings, """
        select e.name from article_entities ae join entities e using (entity_id)
        join articles a using (article_id) where a.is_seed and e.label = 'PERSON'""")}
    assert not {"Putin", "Xi", "Wang"} & seed_people
    # Duplicates are not tagged: every stored article except fallbacks has entities, no duplicate does.
    untagged = _q(settings, """select count(*) from articles a where body_source = 'extracted'
                               and not exists (select 1 from article_entities ae where ae.article_id = a.article_id)""")
    assert untagged[0][0] == 0


def test_provenance_is_recorded(demo_run: Any) -> None:
    settings = demo_run[0]
    rows = _q(settings, """select extractor, extractor_version, ner_pipeline, published_source, http_status, feed
                           from articles where body_source = 'extracted'""")
    assert rows and all(r[0] == "trafilatura" and r[1] and r[2] and r[3] and r[4] == 200 and r[5] for r in rows)
    # Raw HTML sits in Parquet archives beside the warehouse, one pointer row per stored page.
    archived = _q(settings, "select url, archive_file, bytes from raw_archive")
    assert len(archived) == len(rows) and all(b > 0 for _, _, b in archived)
    assert _q(settings, "select count(*) from raw_pages")[0][0] == 0
    files = sorted(settings.warehouse.raw_dir.glob("*/*.parquet"))
    assert {settings.warehouse.raw_dir / f for _, f, _ in archived} <= set(files)
    on_disk = _q(settings, "select count(distinct url) from read_parquet(?)",
                 [str(settings.warehouse.raw_dir / "**" / "*.parquet")])
    assert on_disk[0][0] == len(rows)
    url = archived[0][0]
    html = read_raw_html(settings.warehouse, url)
    assert html is not None and b"<html" in html.lower()
    # New pages are archived as zstd, and the row says so.
    assert _q(settings, "select distinct encoding from read_parquet(?)",
              [str(settings.warehouse.raw_dir / "**" / "*.parquet")]) == [("zstd",)]
    assert read_raw_html(settings.warehouse, "https://nowhere.example/missing") is None


def test_second_identical_run_adds_no_rows(demo_run: Any) -> None:
    _settings, _server, _first, second, before, after = demo_run
    assert second["status"] == "completed"
    assert second["articles_new"] == 0 and second["entries_new"] == 0
    assert {t: after[t] for t in DATA_TABLES} == {t: before[t] for t in DATA_TABLES}
    assert after["runs"] == before["runs"] + 1
    assert after["feed_fetches"] == before["feed_fetches"] + 7


def test_second_run_did_not_refetch_pages(demo_run: Any) -> None:
    server = demo_run[1]
    pages = {p: n for p, n in server.hits.items() if p.startswith("/pages/")}
    assert pages and all(n == 1 for n in pages.values()), pages


def test_a_file_where_the_raw_archive_belongs_stops_no_run(prefect_harness: None, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A file stands where the raw-HTML archive's folder belongs (a stray copy, a mount gone wrong): the run's
    retention step and each load could not list or write it, and every run failed at its start. Now the run
    completes, its articles are stored without their raw HTML (provenance says so), and an ERROR names the path."""
    from flows.core.settings import load_settings
    from flows.ops.demo import DEMO_DATA, demo_config

    with LocalServer(DEMO_DATA) as server:
        config = demo_config(server, tmp_path / "wh" / "demo.duckdb", tmp_path)
        settings = load_settings(config, env={})
        settings.warehouse.raw_dir.parent.mkdir(parents=True, exist_ok=True)
        settings.warehouse.raw_dir.write_text("not a folder")
        with caplog.at_level(logging.ERROR, logger="newsflow"):
            summary = ingest(config=str(config))
    assert summary["status"] == "completed" and summary["articles_new"] == 17
    assert _q(settings, "select count(*) from raw_archive")[0][0] == 0
    assert _q(settings, "select count(*) from article_provenance where has_raw_html") == [(0,)]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("raw-HTML retention skipped: NotADirectoryError") for m in errors), errors
    assert any(m.startswith("raw HTML of ") and str(settings.warehouse.raw_dir) in m for m in errors), errors
    assert settings.warehouse.raw_dir.read_text() == "not a folder"  # never removed or overwritten


def test_the_commands_keep_the_config_s_staging_folder_and_snapshot(
        prefect_harness: None, demo_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`newsflow ingest --config` without --warehouse stages and publishes where the config says, as `status`,
    `check` and `backup` read: it used to hand the flow the warehouse's path, which puts both beside the file
    (what a --warehouse gets), so `status` showed neither staged batches nor the snapshot (the shipped config
    keeps its snapshot in warehouse/snapshots/)."""
    from flows.cli import main
    from flows.ops.demo import demo_config

    monkeypatch.setenv("NEWSFLOW_PIPELINE__WORKERS", "1")
    db = tmp_path / "wh" / "demo.duckdb"
    config = demo_config(demo_server, db, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    config.write_text(config.read_text()
                      .replace(str(db.with_name("demo.staging")), str(elsewhere / "staging"))
                      .replace(str(db.with_name("demo.snapshot.duckdb")), str(elsewhere / "snap.duckdb")))
    assert main(["ingest", "--config", str(config), "--max-articles", "1"]) == 0
    assert (elsewhere / "snap.duckdb").is_file() and (elsewhere / "staging").is_dir()
    assert not db.with_name("demo.snapshot.duckdb").exists() and not db.with_name("demo.staging").exists()
    capsys.readouterr()
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Snapshot: none yet" not in out and str(elsewhere / "snap.duckdb") in out, out


def test_a_refresh_that_did_not_finish_is_made_by_the_next_run_even_a_quiet_one(
        prefect_harness: None, demo_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs refresh the search index after they load something. One whose refresh was killed (or met a full disk)
    left the index behind what it loaded, with no error, until a later run loaded: the mark it leaves
    (search_index.behind_mark) makes the next run refresh, quiet or not, and a refresh that ends removes it."""
    from flows.core.settings import load_settings
    from flows.ops.demo import demo_config
    from flows.warehouse import search_index

    monkeypatch.setenv("NEWSFLOW_PIPELINE__WORKERS", "1")
    config = demo_config(demo_server, tmp_path / "wh" / "demo.duckdb", tmp_path)
    wh = load_settings(config, env={}).warehouse
    assert ingest(config=str(config))["articles_new"] > 0
    mark = search_index.behind_mark(wh)
    assert wh.search_path.exists() and not mark.exists()
    wh.search_path.unlink()  # as a refresh killed before its head was written leaves it, with its mark
    mark.touch()
    quiet = ingest(config=str(config))
    assert quiet["articles_new"] == 0 and quiet["duplicates_exact"] + quiet["duplicates_near"] == 0, quiet
    assert wh.search_path.exists() and not mark.exists()

"""The ingest flow against the fault-injection server: every failure recorded as one clear row, every good
article stored, nothing hangs. Private networks stay refused; only the server's own 127.0.0.1 is allowed, so the
redirect to 127.0.0.2 is refused by the guard (no packet leaves loopback either way).

Covers: flows.web.fetch, flows.run.ingest
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from faultserver import ARTICLES, FAULTS, GOOD_FEEDS, ODD_FEEDS, FaultServer

from flows.core.settings import load_settings
from flows.run.ingest import ingest
from flows.warehouse.database import connect

FEEDS = {**{p: "fault" for p in FAULTS}, **{p: "odd" for p in ODD_FEEDS}, **{p: "good" for p in GOOD_FEEDS},
         "/feeds/moved": "good", "/feeds/temp": "good"}


def _config(tmp: Path, server: FaultServer) -> Path:
    db = tmp / "wh" / "faults.duckdb"
    feeds = "".join(f'[[feeds]]\nname = "{path.strip("/")}"\nurl = "{server.url(path)}"\ntags = ["{kind}"]\n'
                    for path, kind in FEEDS.items())
    text = (
        f'[warehouse]\npath = "{db}"\nstaging_dir = "{tmp / "staging"}"\n'
        f'snapshot_path = "{tmp / "snap.duckdb"}"\nlock_wait_seconds = 5\n'
        "[fetch]\nallow_private_networks = false\nallowed_networks = [\"127.0.0.1/32\"]\n"
        "connect_timeout = 1\nread_timeout = 1\ntotal_timeout = 2\nmax_feed_bytes = 1_000_000\n"
        "max_page_bytes = 1_000_000\nretries = 0\nmin_host_delay = 0\nconcurrency = 8\n"
        "[health]\nbackoff_base_seconds = 3600\n"
        f'[pipeline]\nworkers = 1\nseeds_dir = "{tmp / "no-seeds"}"\n' + feeds
    )
    (tmp / "no-seeds").mkdir()  # the seed corpus stays out: only fault-server articles are counted
    path = tmp / "faults.toml"
    path.write_text(text)
    return path


def _q(db: Any, sql: str) -> list[tuple]:
    with connect(db, read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def runs(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("faults")
    with FaultServer() as server:
        config = _config(tmp, server)
        settings = load_settings(config, env={})
        start = time.monotonic()
        first = ingest(config=str(config))
        first_seconds = time.monotonic() - start
        hits_after_first = dict(server.hits)
        rows_first = _q(settings.warehouse, "select feed, outcome, error, error_detail from feed_fetches")
        second = ingest(config=str(config))
        hits = dict(server.hits)
    return settings, server, first, second, first_seconds, rows_first, hits_after_first, hits


def test_run_completes_without_hanging(runs: Any) -> None:
    _settings, _server, first, second, seconds, *_ = runs
    assert first["status"] == "completed" and second["status"] == "completed"
    # three 2-second limits (timeout, drip, dripped headers) run side by side in the feed pool
    assert seconds < 60


def test_one_clear_row_per_failure(runs: Any) -> None:
    rows = {feed: (outcome, error, detail) for feed, outcome, error, detail in runs[5]}
    assert len(rows) == len(FEEDS)
    for path, code in FAULTS.items():
        outcome, error, detail = rows[path.strip("/")]
        assert (outcome, error) == ("failed", code), path
        assert detail, path


def test_every_good_article_lands(runs: Any) -> None:
    settings, server = runs[0], runs[1]
    stored = {r[0]: r[1] for r in _q(settings.warehouse, "select url, body_source from articles")}
    for slug in ARTICLES:
        url = server.url(f"/articles/{slug}.html")
        assert stored.get(url) == "extracted", slug


def test_odd_feeds_are_parsed(runs: Any) -> None:
    settings, server = runs[0], runs[1]
    rows = dict(_q(settings.warehouse, "select feed, outcome from feed_fetches where run_id = "
                                       "(select min(run_id) from feed_fetches where outcome = 'ok')"))
    entries = {r[0] for r in _q(settings.warehouse, "select url from entries")}
    titles = {r[0] for r in _q(settings.warehouse, "select title from entries")}
    for path, link in ODD_FEEDS.items():
        assert server.url(link) in entries, path
        assert rows.get(path.strip("/"), "ok") != "failed", path
    assert "Президент встретился с министрами" in titles and "Grüße aus Köln" in titles
    # nothing expanded: no laughs, no file contents, and the external DTD never requested
    assert not any("lollol" in (t or "") or "root:" in (t or "") for t in titles)
    assert runs[7].get("/evil.dtd", 0) == 0


def test_article_faults_are_recorded(runs: Any) -> None:
    settings, server = runs[0], runs[1]
    pages = {r[0]: (r[1], r[2]) for r in _q(settings.warehouse, "select url, outcome, error from page_fetches")}
    assert pages[server.url("/articles/photo.jpg")][1] == "wrong_content_type"
    assert pages[server.url("/private/secret.html")][1] == "robots_disallowed"
    assert runs[7].get("/private/secret.html", 0) == 0  # robots.txt said no: never requested
    assert runs[7].get("/robots.txt") == 1  # fetched once, cached for the run


def test_health_after_second_run(runs: Any) -> None:
    settings, server, _first, second, *_rest, hits_first, hits = runs
    health = {r[0]: r[1:] for r in _q(settings.warehouse, """
        select feed, state, consecutive_failures, disabled_reason, url, last_outcome, last_outcome_detail,
               next_fetch_at > now() + interval 1 hour
        from feed_health""")}
    assert health["feeds/410"][0] == "disabled" and "410 Gone" in health["feeds/410"][2]
    assert health["feeds/410"][4] == "skipped"  # visible, with the reason, not silently dropped
    assert health["feeds/429"][0] == "backing_off" and health["feeds/429"][6]  # Retry-After: 7200
    assert health["feeds/500"][0] == "backing_off" and health["feeds/500"][1] == 1
    assert health["feeds/moved"][3] == server.url("/feeds/good-c.xml")  # permanent chain: URL updated
    assert health["feeds/temp"][3] == server.url("/feeds/temp")  # temporary hop: URL kept
    assert health["feeds/etag.xml"][4] == "not_modified"  # 304 on the second run
    assert health["feeds/good-a.xml"][4] == "unchanged"  # same body hash: not parsed again
    assert hits["/feeds/moved"] == hits_first["/feeds/moved"]  # second run went straight to the new URL
    assert hits["/feeds/410"] == hits_first["/feeds/410"] and hits["/feeds/429"] == hits_first["/feeds/429"]
    assert second["feeds_skipped"] == len(FAULTS)  # every failed feed waits out its backoff (410: disabled)

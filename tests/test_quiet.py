"""A run with nothing new: its bookkeeping rows go in one batch; the snapshot is copied by a run only when it is
missing or older than `snapshot_every_hours` (real Prefect API, real DuckDB, pages from 127.0.0.1).

Covers: flows.run.ingest
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config

from flows.core.settings import Settings, load_settings
from flows.ops.localserver import LocalServer
from flows.run.ingest import ingest
from flows.warehouse.database import connect

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title><link>{{BASE}}/</link>
<description>q</description>
<item><title>Harbour reopens</title><link>{{BASE}}/a.html</link><guid>a</guid></item>
<item><title>Market day</title><link>{{BASE}}/b.html</link><guid>b</guid></item>
</channel></rss>"""


def _page(title: str, words: str) -> str:
    return f"<html><body><article><h1>{title}</h1><p>{words * 30}</p></article></body></html>"


def _runs(settings: Settings, path: Path) -> list[tuple[Any, ...]]:
    with connect(settings.warehouse, read_only=True, path=path) as conn:
        return conn.execute("select status, articles_new from runs order by started_at").fetchall()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "feed.xml").write_text(FEED)
    (root / "a.html").write_text(_page("Harbour reopens", "The harbour in Porto reopened on Monday after repairs. "))
    (root / "b.html").write_text(_page("Market day", "Farmers from Braga sold apples and cheese in the square. "))
    return root


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_runs_publish_the_snapshot_only_when_it_is_missing_or_past_its_interval(
        prefect_harness: None, site: Path, tmp_path: Path) -> None:
    """A quiet run after a published snapshot leaves it alone (same inode and time); so does a run that loads new
    articles within `snapshot_every_hours`; the first run after the interval publishes it, quiet or not."""
    with LocalServer(site) as server:
        config = write_config(tmp_path, f'[[feeds]]\nname = "quiet"\nurl = "{server.url("/feed.xml")}"\n')
        settings = load_settings(config, env={})
        snapshot = settings.warehouse.snapshot_path
        assert settings.warehouse.snapshot_every_hours == 24

        first = ingest(config=str(config))
        assert first["status"] == "completed" and first["entries_new"] == 2
        n = first["articles_new"]
        published = _stamp(snapshot)  # missing: the first run publishes it
        assert _runs(settings, snapshot) == [("completed", n)]

        second = ingest(config=str(config))  # the same entries again: nothing new
        assert second["status"] == "completed" and second["entries_new"] == 0
        assert _stamp(snapshot) == published  # not copied again
        assert _runs(settings, snapshot) == [("completed", n)]
        # The live warehouse has the quiet run's rows all the same, loaded with its last batch.
        assert _runs(settings, settings.warehouse.path) == [("completed", n), ("completed", 0)]
        with connect(settings.warehouse, read_only=True) as conn:
            assert conn.execute("select count(distinct run_id) from feed_fetches").fetchone() == (2,)

        # A run that loads a new article within the interval does not copy the file either.
        (site / "c.html").write_text(_page("Bridge opens", "A new bridge over the Douro opened to traffic today. "))
        (site / "feed.xml").write_text(FEED.replace("</channel>", "<item><title>Bridge opens</title>"
                                                    "<link>{{BASE}}/c.html</link><guid>c</guid></item></channel>"))
        third = ingest(config=str(config))
        assert third["status"] == "completed" and third["articles_new"] == 1
        assert _stamp(snapshot) == published
        assert _runs(settings, snapshot) == [("completed", n)]

        # Past the interval, the next run publishes it, quiet or not.
        old = published[1] / 1e9 - 25 * 3600
        os.utime(snapshot, (old, old))
        fourth = ingest(config=str(config))
        assert fourth["status"] == "completed" and fourth["entries_new"] == 0
        assert _stamp(snapshot) != (published[0], int(old * 1e9))
        assert _runs(settings, snapshot) == [("completed", n), ("completed", 0), ("completed", 1), ("completed", 0)]


def test_with_no_interval_a_run_that_brings_something_new_publishes_and_a_quiet_one_does_not(
        prefect_harness: None, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`snapshot_every_hours = 0`: the rule before the interval, without the quiet runs' every-other copy."""
    monkeypatch.setenv("NEWSFLOW_WAREHOUSE__SNAPSHOT_EVERY_HOURS", "0")
    with LocalServer(site) as server:
        config = write_config(tmp_path, f'[[feeds]]\nname = "quiet"\nurl = "{server.url("/feed.xml")}"\n')
        settings = load_settings(config)
        snapshot = settings.warehouse.snapshot_path
        n = ingest(config=str(config))["articles_new"]
        published = _stamp(snapshot)
        for _ in range(2):  # quiet, twice: never copied for their own bookkeeping rows
            assert ingest(config=str(config))["entries_new"] == 0
            assert _stamp(snapshot) == published
        # A run that brings something new publishes it.
        (site / "c.html").write_text(_page("Bridge opens", "A new bridge over the Douro opened to traffic today. "))
        (site / "feed.xml").write_text(FEED.replace("</channel>", "<item><title>Bridge opens</title>"
                                                    "<link>{{BASE}}/c.html</link><guid>c</guid></item></channel>"))
        assert ingest(config=str(config))["articles_new"] == 1
        assert _stamp(snapshot) != published
        assert _runs(settings, snapshot) == [("completed", n), ("completed", 0), ("completed", 0), ("completed", 1)]

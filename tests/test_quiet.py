"""A run with nothing new: its bookkeeping rows go in one batch, and the snapshot is not copied again while it
already holds every article (real Prefect API, real DuckDB, pages from 127.0.0.1).

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


def test_a_quiet_run_publishes_no_snapshot_unless_it_lags(prefect_harness: None, site: Path,
                                                          tmp_path: Path) -> None:
    with LocalServer(site) as server:
        config = write_config(tmp_path, f'[[feeds]]\nname = "quiet"\nurl = "{server.url("/feed.xml")}"\n')
        settings = load_settings(config, env={})
        snapshot = settings.warehouse.snapshot_path

        first = ingest(config=str(config))
        assert first["status"] == "completed" and first["entries_new"] == 2
        n = first["articles_new"]
        published = snapshot.stat().st_mtime_ns
        assert _runs(settings, snapshot) == [("completed", n)]

        second = ingest(config=str(config))  # the same entries again: nothing new
        assert second["status"] == "completed" and second["entries_new"] == 0
        assert snapshot.stat().st_mtime_ns == published  # not copied again
        assert _runs(settings, snapshot) == [("completed", n)]
        # The live warehouse has the quiet run's rows all the same, loaded with its last batch.
        assert _runs(settings, settings.warehouse.path) == [("completed", n), ("completed", 0)]
        with connect(settings.warehouse, read_only=True) as conn:
            assert conn.execute("select count(distinct run_id) from feed_fetches").fetchone() == (2,)

        # A snapshot older than the warehouse's last write (a run that could not publish, a maintenance flow)
        # is brought up to date by the next run, quiet or not.
        old = published / 1e9 - 3600
        os.utime(snapshot, (old, old))
        third = ingest(config=str(config))
        assert third["status"] == "completed" and third["entries_new"] == 0
        assert _runs(settings, snapshot) == [("completed", n), ("completed", 0), ("completed", 0)]

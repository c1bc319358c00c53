"""Crash safety: a real `newsflow ingest` process is SIGKILLed at several stages, then a re-run must leave the
same warehouse a clean run builds: it opens, nothing is duplicated, nothing is lost.

The process is stopped at a known stage either by the test's server holding a page request (while fetching)
or by the NEWSFLOW_PAUSE_AT hook (flows.core.errors.pause_point), which writes a ready file and waits to
be killed.

Covers: flows.warehouse.store, flows.warehouse.staging
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from demo_warehouse import FAST_ENV, demo_filled, run_ingest

from flows.core.settings import load_settings
from flows.ops.demo import DEMO_DATA, demo_config
from flows.ops.localserver import LocalServer
from flows.warehouse import database, staging

HELD_PAGE = "/pages/valley-ledger/unhcr-report-forced-displacement.html"
# Tables whose rows describe the stories, so they must match a clean run's (feed_fetches has a row per run).
TABLES = ("articles", "duplicates", "entries", "feeds", "entities", "article_entities", "page_fetches",
          "raw_archive", "lsh_buckets", "shingle_samples")
# Rows that must never repeat: tables without a primary key, and natural keys the loader relies on.
REPEATS = {
    "lsh_buckets": "select key, article_id from lsh_buckets",
    "shingle_samples": "select hash, article_id from shingle_samples",
    "article text": "select text_hash from articles",
    "duplicate urls": "select url from duplicates union all select url from articles",
}


class HoldingServer(LocalServer):
    """The demo snapshot, except that one page request is held open until released (a run 'while fetching')."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.release = threading.Event()
        super().__init__(DEMO_DATA, routes={HELD_PAGE: self._held})

    def _held(self, handler: BaseHTTPRequestHandler) -> None:
        self.requested.set()
        self.release.wait(120)
        body = self.render((DEMO_DATA / HELD_PAGE.lstrip("/")).read_bytes(), ".html")
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def server() -> Iterator[HoldingServer]:
    with HoldingServer() as s:
        yield s
        s.release.set()


def wait_for(condition: object, proc: subprocess.Popen[bytes], what: str, deadline_s: float = 180) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"newsflow ended (rc {proc.returncode}) before {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval of the condition, not synchronisation by itself


def kill_run(config: Path, db: Path, pause_at: str | None, server: HoldingServer, tmp_path: Path) -> None:
    """Start `newsflow ingest`, wait until it reaches the stage, SIGKILL its whole process group."""
    from prefect.settings import PREFECT_API_URL

    ready = tmp_path / "paused"
    env = {**os.environ, **FAST_ENV, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    if pause_at:
        env["NEWSFLOW_PAUSE_AT"] = f"{pause_at}:{ready}"
        server.release.set()  # only the fetching case holds a page
    cli = [str(Path(sys.executable).with_name("newsflow")), "ingest", "--config", str(config),
           "--warehouse", str(db)]
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        if pause_at:
            wait_for(ready.exists, proc, f"pause point {pause_at}")
        else:
            wait_for(server.requested.is_set, proc, "the held page request")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        server.release.set()
    assert proc.returncode == -signal.SIGKILL


def table_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


def url_paths(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute("select url from articles union all select url from duplicates").fetchall()
    return {u.split("/", 3)[-1] for (u,) in rows}


@pytest.mark.parametrize("pause_at", [
    None,            # while fetching article pages (the feed state is already stored)
    "load@2",        # in the middle of the transaction that loads the run's feed state and entries
    "staged@3",      # the first article batch is staged, not loaded
    "load@3",        # in the middle of the transaction that loads the first article batch
])
def test_sigkill_then_rerun_matches_a_clean_run(pause_at: str | None, server: HoldingServer, tmp_path: Path,
                                                prefect_harness: None,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    reference = demo_filled(tmp_path_factory)
    db = tmp_path / "wh" / "crash.duckdb"
    config = demo_config(server, db, tmp_path)
    kill_run(config, db, pause_at, server, tmp_path)

    settings = load_settings(config, env={})
    with database.connect(settings.warehouse, wait=0) as conn:  # the killed run left a file that opens
        database.migrate(conn)
    staged_after_kill = len(staging.pending(settings.warehouse.staging_dir))
    if pause_at in ("load@2", "staged@3", "load@3"):
        assert staged_after_kill >= 1

    summary = run_ingest(config, db)
    assert summary["status"] == "completed", summary
    assert staging.pending(settings.warehouse.staging_dir) == []

    with duckdb.connect(str(db), read_only=True) as got, duckdb.connect(str(reference), read_only=True) as ref:
        assert table_counts(got) == table_counts(ref)
        assert url_paths(got) == url_paths(ref)
        # Every raw-HTML pointer names an archive file on disk that holds its page.
        archived: dict[str, set[str]] = {}
        for url, file in got.execute("select url, archive_file from raw_archive").fetchall():
            archived.setdefault(file, set()).add(url)
        assert archived
        for file, urls in archived.items():
            assert urls <= set(pq.read_table(settings.warehouse.raw_dir / file, columns=["url"])["url"].to_pylist())
        for name, sql in REPEATS.items():
            repeated = got.execute(f"select count(*) from (select *, count(*) as n from ({sql}) group by all "
                                   "having n > 1)").fetchone()[0]
            assert repeated == 0, name
        statuses = sorted(r[0] for r in got.execute("select status from runs").fetchall())
    assert statuses == ["abandoned", "completed"]

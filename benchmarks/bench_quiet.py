"""A quiet run: 100 feeds that all answer 304. Wall time of the whole ingest flow, and of the same steps as plain
functions, so Prefect's share shows separately."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import site
from benchmarks.bench_ingest import write_config
from flows import pipeline, staging, warehouse
from flows.settings import load_settings


@dataclass
class QuietResult:
    feeds: int
    flow_seconds: float
    plain_seconds: float
    not_modified: int


def plain_run(config: Path) -> tuple[float, int]:
    """The steps of a run with nothing new, without Prefect: states, feeds, one batch (the flow folds the head
    rows into the last batch when nothing is new), no snapshot copy (it is current)."""
    start = time.perf_counter()
    settings = load_settings(config, env={})
    warehouse.ensure_ready(settings.warehouse)
    pipeline.load_pending(settings)
    stats = pipeline.RunStats()
    states = pipeline.read_feed_states(settings)
    out = pipeline.fetch_feeds(settings, [f for f in settings.feeds if f.enabled], states, "plain", stats)
    pipeline.select_new(settings, out.entries, out.fetch_rows, settings.fetch.max_articles_per_feed)
    tail = staging.Batch(f"plain-{time.time_ns()}-1", "plain")
    tail.add("feeds", *out.state_rows)
    tail.add("feed_fetches", *out.fetch_rows)
    tail.add("runs", {"run_id": "plain", "flow": "ingest", "status": "completed", "started_at": datetime.now(UTC)})
    pipeline.store(settings, tail)
    return time.perf_counter() - start, stats.feeds_not_modified


def run(feeds: int = 100) -> QuietResult:
    from flows.flow import ingest

    with tempfile.TemporaryDirectory(prefix="newsflow-quiet-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "site").mkdir()
        names = [f"{i}.xml" for i in range(feeds)]
        with site.Server(tmp / "site", not_modified=True) as server:
            config = write_config(tmp, server.base, names, feed_dir="quiet")
            ingest(config=str(config))  # first run: stores each feed's ETag
            start = time.perf_counter()
            summary = ingest(config=str(config))
            flow_seconds = time.perf_counter() - start
            plain_seconds, _ = plain_run(config)
    return QuietResult(feeds, flow_seconds, plain_seconds, summary.get("feeds_not_modified", 0))

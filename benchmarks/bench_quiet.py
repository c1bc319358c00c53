"""A quiet run: 100 feeds that all answer 304. Wall time of the whole ingest flow, and of the same steps as plain
functions, so Prefect's share shows separately.

Measured several times (NEWSFLOW_BENCH_QUIET_RUNS, default 5), a flow run and a plain run in turn so both meet
the same load: the target is for every run, so the slowest one is judged. A Prefect flow run ends on a whole
second of its heartbeat thread (docs/benchmarks.md, "Issue 11, part 4"), so one slow run shows as a step of a
second, not as a little drift.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import site
from benchmarks.bench_ingest import write_config
from flows.core import stats
from flows.core.settings import load_settings
from flows.run import artifacts, collect
from flows.warehouse import checks, database, runstate, staging, store


@dataclass
class QuietResult:
    feeds: int
    flow_seconds: list[float]  # each flow run, in order
    plain_seconds: list[float]
    not_modified: int
    load_average: float  # the 1-minute load average when the runs started

    @property
    def slowest(self) -> float:
        return max(self.flow_seconds)

    @property
    def overhead(self) -> float:
        """Prefect's share: the median flow run less the median plain run."""
        return statistics.median(self.flow_seconds) - statistics.median(self.plain_seconds)


def plain_run(config: Path) -> tuple[float, int]:
    """The steps of a run with nothing new, without Prefect: the start reads, the feeds, one batch (the flow folds
    the head rows into the last batch when nothing is new), the checks and the report's reads over one
    connection; no snapshot copy (it is current)."""
    start = time.perf_counter()
    settings = load_settings(config, env={})
    run_stats = stats.RunStats()
    begun = runstate.start_run(settings, "plain", mark_dead=True)
    runstate.seeds_to_load(settings, begun.seed_hashes)
    out = collect.fetch_feeds(settings, [f for f in settings.feeds if f.enabled], begun.feed_states, "plain", run_stats)
    collect.select_new(settings, out.entries, out.fetch_rows, settings.fetch.max_articles_per_feed)
    tail = staging.Batch(f"plain-{time.time_ns()}-1", "plain")
    tail.add("feeds", *out.state_rows)
    tail.add("feed_fetches", *out.fetch_rows)
    tail.add("runs", {"run_id": "plain", "flow": "ingest", "status": "completed", "started_at": datetime.now(UTC)})
    store.store(settings, tail)
    with database.connect(settings.warehouse) as conn:
        checks.run_and_store(settings.warehouse, "plain", alive_runs=["plain"], dedup=settings.dedup, conn=conn)
        artifacts.read_end(conn, settings, "plain")
    return time.perf_counter() - start, run_stats.feeds_not_modified


def run(feeds: int = 100, runs: int | None = None) -> QuietResult:
    from flows.run.ingest import ingest

    runs = runs or int(os.environ.get("NEWSFLOW_BENCH_QUIET_RUNS", "5"))
    with tempfile.TemporaryDirectory(prefix="newsflow-quiet-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "site").mkdir()
        names = [f"{i}.xml" for i in range(feeds)]
        with site.Server(tmp / "site", not_modified=True) as server:
            config = write_config(tmp, server.base, names, feed_dir="quiet")
            ingest(config=str(config))  # first run: stores each feed's ETag
            load = os.getloadavg()[0]
            flow_seconds, plain_seconds, not_modified = [], [], []
            for _ in range(runs):
                start = time.perf_counter()
                summary = ingest(config=str(config))
                flow_seconds.append(time.perf_counter() - start)
                not_modified.append(summary.get("feeds_not_modified", 0))
                plain_seconds.append(plain_run(config)[0])
    return QuietResult(feeds, flow_seconds, plain_seconds, min(not_modified), load)

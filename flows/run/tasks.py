"""The run's Prefect tasks (each named `..._task`, wrapping a plain function of a stage module) and its context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.core.settings import Settings
from flows.core.stats import RunStats
from flows.run import artifacts, collect
from flows.run.runprogress import IngestProgress
from flows.warehouse import checks, database, search_index, snapshot, staging, store

# Tasks take live objects (pools, clients): no input hashing, no result persistence.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False}
# The run context, the batches and the feeds stage's inputs are passed `quote`d: otherwise Prefect walks every
# element of them (each document's shingles, mentions ...; each feed's config and stored state) twice per task
# call looking for futures, which cost the parent more CPU than staging and loading the batch (py-spy, 704
# articles: docs/benchmarks.md), and 40 ms of a quiet run's 100 feeds.

fetch_feeds_task = task(collect.fetch_feeds, name="fetch-feeds", **_TASK)
load_backlog_task = task(store.load_pending, name="load-staged", retries=2, retry_delay_seconds=[5, 30], **_TASK)
publish_snapshot_task = task(snapshot.publish_snapshot, name="publish-snapshot", **_TASK)
refresh_search_task = task(search_index.refresh, name="refresh-search-index", **_TASK)


@dataclass
class RunContext:
    settings: Settings
    run_id: str
    started_at: datetime
    stats: RunStats
    parameters: dict[str, Any]
    flow: str
    seq: int = 0
    progress: IngestProgress | None = None

    def batch(self) -> staging.Batch:
        self.seq += 1
        return staging.Batch(f"{self.started_at:%Y%m%dT%H%M%S}-{self.run_id[:8]}-{self.seq:04d}", self.run_id)

    def run_row(self, status: str, message: str | None = None) -> dict[str, Any]:
        finished = None if status == "running" else datetime.now(UTC)
        return {"run_id": self.run_id, "flow": self.flow, "started_at": self.started_at,
                "finished_at": finished, "status": status, "parameters": _json(self.parameters),
                "message": message, **self.stats.counts()}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str, sort_keys=True)


@task(name="store-batch", retries=1, retry_delay_seconds=5, **_TASK)
def store_batch_task(ctx: RunContext, batch: staging.Batch, *, last: bool = False) -> bool:
    """Stage and load one batch; False when it stays staged because the warehouse is locked. Only the run's
    `last` batch checkpoints the file (store.store)."""
    result = store.store(ctx.settings, batch, checkpoint=last)
    if result is None:
        ctx.stats.batches_staged += 1
        if ctx.progress is not None:
            ctx.progress.stored(batch.batch_id)
        get_run_logger().warning("warehouse locked: batch %s stays staged for the next run", batch.batch_id)
        return False
    ctx.stats.add_load(result)
    if ctx.progress is not None:
        ctx.progress.stored(batch.batch_id)
    return True


# The same name in the UI as store_batch_task: the loader's seed files are stored ahead of the staged batches.
@task(name="store-batch", retries=1, retry_delay_seconds=5, **_TASK)
def store_ahead_task(ctx: RunContext, batch: staging.Batch) -> bool:
    """Stage and load one batch ahead of the batches already staged (the loader's new seed files: a seed is the
    original of a shard's copy of it); False when the warehouse stays locked: it stays staged, loaded in turn."""
    result = store.load_staged(ctx.settings, staging.write(batch, ctx.settings.warehouse.staging_dir))
    if result is None:
        ctx.stats.batches_staged += 1
        get_run_logger().warning("warehouse locked: batch %s stays staged for the next run", batch.batch_id)
        return False
    ctx.stats.add_load(result)
    return True


# The same name in the UI as store_batch_task: a shard run's batches are stored for the loader to load.
@task(name="store-batch", retries=1, retry_delay_seconds=5, **_TASK)
def stage_batch_task(ctx: RunContext, batch: staging.Batch) -> bool:
    """Stage one batch for the loader (a stage-only run); False: it is not loaded."""
    staging.write(batch, ctx.settings.warehouse.staging_dir)
    ctx.stats.batches_staged += 1
    return False


@task(name="warehouse-checks", **_TASK)
def warehouse_checks_task(ctx: RunContext) -> tuple[checks.CheckRun | None, artifacts.EndReads | None]:
    """Run the warehouse checks and store them with the run (check_results, runs.checks_failed), then read what
    the run's report and alerts show over the same connection. (None, None) when the checks could not run (the
    warehouse is locked: a warning, not a failure); the report then reads for itself."""
    log = get_run_logger()
    wh = ctx.settings.warehouse
    try:
        with database.connect(wh, wait=wh.waits.checks) as conn:
            done = checks.run_and_store(wh, ctx.run_id, alive_runs=[ctx.run_id], dedup=ctx.settings.dedup, conn=conn)
            try:
                reads: artifacts.EndReads | None = artifacts.read_end(conn, ctx.settings, ctx.run_id)
            except duckdb.Error as exc:  # the checks are stored; the report and alerts read again for themselves
                log.warning("the report's reads failed after the checks (%s); the report reads again", exc)
                reads = None
    except database.WarehouseLocked:
        log.warning("warehouse checks skipped: %s is held by another process", wh.path)
        return None, None
    except (database.WarehouseError, duckdb.Error) as exc:  # everything is stored; the run stays good
        log.error("warehouse checks could not run: %s", exc)
        return None, None
    log.info("warehouse checks: %d run, %d failing", len(done.results), len(done.failed))
    for r in done.failed:
        if r.name == "dedup_index_stale" and r.sample:
            log.warning("the stored dedup index was built by %s %s, not the current dedup settings: near copies "
                        "of articles stored before the change are missed until `newsflow reprocess --step dedup`",
                        r.sample[0]["method"], r.sample[0]["params"] or "(settings unrecorded)")
    return done, reads


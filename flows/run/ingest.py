"""The `ingest` Prefect flow: one run, feeds to warehouse (the tasks it calls are in flows/run/tasks.py)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.core.settings import FeedConfig, Settings, load_settings
from flows.core.stats import RunStats
from flows.run import alerts, artifacts, collect, progress, stream, workers
from flows.run.finish import last_change, snapshot_current, write_html_report
from flows.run.loader import store_seed_files
from flows.run.runprogress import IngestProgress
from flows.run.tasks import (
    RunContext,
    fetch_feeds_task,
    load_backlog_task,
    publish_snapshot_task,
    store_batch_task,
    warehouse_checks_task,
)
from flows.warehouse import database, runstate, staging, store
from flows.warehouse.runlock import run_lock, shards_alive
from flows.web.politeness import HostGate


def select_feeds(settings: Settings, names: list[str] | None, tags: list[str] | None) -> list[FeedConfig]:
    """Enabled feeds, narrowed to the given names and/or tags; unknown names or tags, or a selection of
    disabled feeds only, are errors naming what the config has."""
    known_names = sorted(f.name for f in settings.feeds)
    known_tags = sorted({t for f in settings.feeds for t in f.tags})
    unknown = sorted(set(names or ()) - set(known_names))
    if unknown:
        raise ValueError(f"unknown feed name(s): {', '.join(unknown)} (the config has: "
                         f"{', '.join(known_names) or 'no feeds'})")
    unknown = sorted(set(tags or ()) - set(known_tags))
    if unknown:
        raise ValueError(f"unknown tag(s): {', '.join(unknown)} (the config's feeds have: "
                         f"{', '.join(known_tags) or 'no tags'})")
    feeds = [f for f in settings.feeds if f.enabled]
    if names:
        feeds = [f for f in feeds if f.name in names]
    if tags:
        feeds = [f for f in feeds if set(tags) & set(f.tags)]
    if (names or tags) and not feeds:
        asked = [f"feed {', '.join(names)}"] * bool(names) + [f"tag {', '.join(tags)}"] * bool(tags)
        raise ValueError(f"no enabled feed matches {' and '.join(asked)} (disabled feeds have enabled = false)")
    return feeds


def process_articles(ctx: RunContext, ready: stream.Ready, dry_run: bool) -> staging.Batch | None:
    """Count one batch that the article stream downloaded, extracted, dedup-checked and tagged, and make it the
    batch to store (None on a dry run).

    Not a task: it only counts and packs, and a task run per batch cost the Prefect API (and this process) more
    than the work; the batch's `store-batch` task is what the UI shows. The CPU work of the next batches goes on
    in the pool meanwhile (flows/run/stream.py).
    """
    log = get_run_logger()
    stats = ctx.stats
    stats.pages_fetched += ready.fetched
    stats.pages_failed += sum(1 for p in ready.pages if p["outcome"] in ("fallback", "failed"))
    fallbacks = sum(1 for d in ready.docs if d.body_source == "feed_summary")
    stats.fallbacks += fallbacks
    log.info("batch of %d pages: %d documents, %d fallbacks", len(ready.pages), len(ready.docs), fallbacks)
    if dry_run:
        return None
    batch = ctx.batch()
    batch.add("page_fetches", *(dict(p, run_id=ctx.run_id) for p in ready.pages))
    batch.add("docs", *ready.docs)
    if ctx.progress is not None:
        ctx.progress.queued(batch.batch_id, len(ready.entries))
    return batch


def _since(entries: list[Any], since: date | None) -> list[Any]:
    if since is None:
        return entries
    cut = datetime.combine(since, datetime.min.time(), UTC)
    return [e for e in entries if e.published_at is None or e.published_at >= cut]


@flow(name="ingest", log_prints=True)
def ingest(
    feeds: Annotated[list[str] | None, Field(description="Feed names to fetch; empty means all enabled feeds")] = None,
    tags: Annotated[list[str] | None, Field(description="Only feeds with any of these tags")] = None,
    max_articles_per_feed: Annotated[
        int | None, Field(ge=0, le=1000, description="New articles taken per feed; empty uses the config")
    ] = None,
    since: Annotated[date | None, Field(description="Backfill window: skip entries published before this day")] = None,
    dry_run: Annotated[bool, Field(description="Fetch, extract and tag, but write nothing")] = False,
    config: Annotated[str | None, Field(description="Config file; empty uses NEWSFLOW_CONFIG or the default")] = None,
    warehouse_path: Annotated[str | None, Field(description="DuckDB file; empty uses the config")] = None,
    shard: Annotated[str | None, Field(pattern=r"^\s*\d+/\d+\s*$",
                                       description="K/N: only shard K of N (feeds by a hash of their host)")] = None,
    stage_only: Annotated[bool, Field(description="Stage the batches for the loader; do not load them")] = False,
) -> dict[str, Any]:
    """Fetch feeds, download and extract new articles, deduplicate, tag entities, load the warehouse.

    Args:
        feeds: Feed names to fetch; empty means all enabled feeds.
        tags: Only feeds with any of these tags; empty means no tag filter.
        max_articles_per_feed: New articles taken per feed (0-1000); empty uses the config.
        since: Backfill window: skip entries published before this day; empty takes every entry.
        dry_run: Fetch, extract and tag, but write nothing.
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
        shard: K/N: only the feeds of shard K of N (1-based; by a stable hash of the feed's host).
        stage_only: Stage every batch in `[warehouse] staging_dir` for the loader (the `load` flow) and never
            open the warehouse for writing; shard runs of one fan-out do this side by side.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    part = collect.parse_shard(shard) if shard else None
    if stage_only:
        settings = settings.model_copy(update={"stage_only": True})
    params = {"feeds": feeds, "tags": tags, "max_articles_per_feed": max_articles_per_feed,
              "since": since, "dry_run": dry_run}
    if part or stage_only:  # only then, so unsharded runs keep the parameters they always recorded
        params |= {"shard": f"{part[0]}/{part[1]}" if part else None, "stage_only": stage_only}
    ctx = RunContext(settings, str(flow_run.get_id() or uuid.uuid4()), datetime.now(UTC), RunStats(), params,
                     "ingest")
    # A stage-only run locks its shard only: the shards of one fan-out run side by side, and the loader, which
    # holds the warehouse's lock, never meets a writer.
    lock = f"shard-{part[0]}-of-{part[1]}" if stage_only and part else "shard-1-of-1" if stage_only else None
    with run_lock(settings.warehouse.path, lock) as mine:
        if not mine:
            log.warning("another ingest run holds %s%s; this run does nothing", settings.warehouse.path,
                        f" ({lock})" if lock else "")
            return {"status": "skipped", "reason": "another run in progress"}
        return _ingest(ctx, feeds, tags, max_articles_per_feed, since, dry_run, part)


def _ingest(ctx: RunContext, names: list[str] | None, tags: list[str] | None, max_per_feed: int | None,
            since: date | None, dry_run: bool, part: tuple[int, int] | None = None) -> dict[str, Any]:
    log = get_run_logger()
    settings, stats = ctx.settings, ctx.stats
    prog = ctx.progress = IngestProgress(progress.current(), dry_run)
    stage_only = settings.stage_only
    wh_changed_at = last_change(settings.warehouse.path)  # before this run writes anything
    loaded = 0
    staged_dir = settings.warehouse.staging_dir
    # A task only when earlier runs left something staged: on a quiet run every task costs Prefect API calls.
    # Loaded before the feed states are read, as they may hold a newer state of some feed.
    if not dry_run and not stage_only and staged_dir.is_dir() and any(staged_dir.iterdir()):
        loaded, left = load_backlog_task(settings, stats)
        if loaded or left:
            log.info("loaded %d batches staged by earlier runs; %d still staged", loaded, left)
    # Stage-only: the loader creates and migrates the warehouse, loads the backlog and marks dead runs. A staging
    # shard's `running` row is alive, so dead runs are not marked while one stages.
    start = runstate.start_run(settings, ctx.run_id,
                            mark_dead=not dry_run and not stage_only and not shards_alive(settings.warehouse.path))
    if not stage_only and not start.ready:
        log.warning("%s is held open by another process: this run stages its batches in %s and loads them as "
                    "soon as the lock is free (or the next run does)", settings.warehouse.path,
                    settings.warehouse.staging_dir)
    selected = collect.in_shard(select_feeds(settings, names, tags), part)
    if part:
        log.info("shard %d/%d: %d of the selected feeds", part[0], part[1], len(selected))
    gate = HostGate.for_settings(settings.fetch)
    pool = None
    quiet_head: staging.Batch | None = None
    try:
        # Seeds are the loader's (and a plain ingest's) job: shards would each stage the same files.
        seeds, errors = ([], []) if stage_only else runstate.seeds_to_load(settings, start.seed_hashes)
        if (seeds or errors) and not dry_run:
            pool = pool or workers.make_pool(settings, **warm_pool())
            store_seed_files(ctx, pool, seeds, errors)

        loads: list[Any] = []
        prog.feeds(len(selected))
        out = fetch_feeds_task(quote(settings), quote(selected), quote(start.feed_states), ctx.run_id, quote(stats),
                          gate=gate, log=log.warning, progress=prog.event)
        new = collect.select_new(settings, _since(out.entries, since), out.fetch_rows,
                                 settings.fetch.max_articles_per_feed if max_per_feed is None else max_per_feed)
        stats.entries_new = len(new)
        log.info("%d feeds: %d ok, %d not modified, %d failed, %d skipped; %d entries, %d new",
                 stats.feeds_total, stats.feeds_ok, stats.feeds_not_modified, stats.feeds_failed,
                 stats.feeds_skipped, stats.entries_seen, len(new))
        if not dry_run:
            head = ctx.batch()
            head.add("feeds", *out.state_rows)
            head.add("feed_fetches", *out.fetch_rows)
            head.add("entries", *collect.entry_rows(out.entries, ctx.run_id))
            if new:
                head.add("runs", ctx.run_row("running"))  # marked abandoned by the next run if this one dies
                # In the writer thread (below): the downloads start while it loads.
                loads.append(store_batch_task.submit(quote(ctx), quote(head)))
            else:
                quiet_head = head  # nothing to process: these rows go with the run's last batch, one load fewer
        prog.articles(len(new))
        n_batches = -(-len(new) // settings.pipeline.batch_size)
        if new:
            pool = pool or workers.make_pool(settings, **warm_pool())
            log.info("process pool: %s", "the warm pool of newsflow serve"
                     if isinstance(pool, workers.RemoteExecutor) else f"{type(pool).__name__} of this run")
        # Loads run in a writer thread, one after the other (wait_for chains them: still one writer, batches in
        # order), so this thread keeps feeding the pool while a batch is staged and loaded. At most two loads
        # wait at a time, which bounds the batches held in memory.
        for i, ready in enumerate(stream.articles(settings, pool, new, gate=gate, progress=prog.event), start=1):
            batch = process_articles(ctx, ready, dry_run)
            if batch is None:
                prog.processed(len(ready.entries))
            else:
                if len(loads) >= 2:
                    loads.pop(0).result()
                loads.append(store_batch_task.submit(quote(ctx), quote(batch), wait_for=loads[-1:]))
            log.info("batch %d/%d processed; %d new articles, %d duplicates loaded so far", i, n_batches,
                     stats.articles_new, stats.duplicates_exact + stats.duplicates_near)
            prog.checkpoint()
        for load in loads:
            load.result()
        prog.checkpoint()
        for note in gate.crawl_delay_notes():
            log.warning("politeness: %s", note)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    status, message = "completed", None
    checked, end = None, None
    if stage_only and not dry_run:
        tail = quiet_head or ctx.batch()  # a quiet shard's feed rows go with its run row
        tail.add("runs", ctx.run_row(status))
        store_batch_task(quote(ctx), quote(tail), last=True)
        status = "staged"
        message = (f"stage-only: {stats.batches_staged} batches staged in {settings.warehouse.staging_dir}; "
                   "`newsflow load` (or the fan-out's loader) loads them")
    elif not dry_run:
        # Last chance to load what the lock kept staged (full lock wait), before the run row records the outcome.
        late, stats.batches_staged = store.load_pending(settings, stats)
        # Nothing new came in (no entry, seed or earlier staged batch): only this run's own bookkeeping rows change.
        quiet = quiet_head is not None and not (seeds or errors or loaded or late)
        if stats.batches_staged:
            status = "staged"
            message = (f"the warehouse was locked: {stats.batches_staged} batches are staged in "
                       f"{settings.warehouse.staging_dir} and the next run loads them; nothing is lost")
        tail = quiet_head or ctx.batch()
        tail.add("runs", ctx.run_row(status, message))
        store_batch_task(quote(ctx), quote(tail), last=True)
        if stats.batches_staged:
            status = "staged"
            message = message or (f"the warehouse was locked at the end of the run: its last batch is staged in "
                                  f"{settings.warehouse.staging_dir} and the next run loads it; nothing is lost")
            log.warning("warehouse checks skipped: the warehouse was locked at the end of the run")
        else:
            checked, end = warehouse_checks_task(quote(ctx))
            if quiet and snapshot_current(settings.warehouse, wh_changed_at):
                log.info("snapshot not republished: nothing new since it was published")
            else:
                try:
                    publish_snapshot_task(settings.warehouse)
                except database.WarehouseLocked:
                    log.warning("snapshot not published: warehouse locked")
    page = None if dry_run or stage_only else write_html_report(settings, log)
    artifacts.publish(ctx.settings, ctx.run_id, stats, dry_run or stage_only, checks=checked, html_path=page, reads=end)
    if not dry_run and not stage_only:
        # ERROR log + `newsflow.feed.failing` event per feed over the threshold
        alerts.publish(settings, log, None if end is None else end.alerting)
    if checked is not None:
        alerts.publish_checks(settings, checked, log)  # ERROR log + `newsflow.check.failed` event per check
    prog.checkpoint(100.0)
    summary = {"run_id": ctx.run_id, "status": "dry_run" if dry_run else status, **stats.counts(),
               "checks_failed": None if checked is None else len(checked.failed)}
    if message:
        log.warning(message)
    return summary


def warm_pool() -> dict[str, str | None]:
    """The warm pool `newsflow serve` keeps for the flow runs it starts (none when run otherwise)."""
    return {"warm": os.environ.get(workers.WARM_POOL_ENV), "key": os.environ.get(workers.WARM_POOL_KEY_ENV)}

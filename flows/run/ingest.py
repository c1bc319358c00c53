"""The `ingest` Prefect flow: one run, feeds to warehouse, in the order of docs/pipeline.md (`run_ingest`).

What the run writes depends on its mode (flows/run/modes.py: a normal run, a dry run, a stage-only shard),
chosen once at the start; the tasks it calls are in flows/run/tasks.py, its end in flows/run/finish.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.core.settings import FeedConfig, Settings, load_settings
from flows.core.stats import RunStats
from flows.feeds.parse import FeedEntry
from flows.run import collect, modes, progress, stream
from flows.run.collect import FeedsOutcome
from flows.run.finish import publish_report, recorded_failure
from flows.run.modes import RunMode
from flows.run.runprogress import IngestProgress
from flows.run.tasks import RunContext, fetch_feeds_task
from flows.run.workers import RunPool
from flows.warehouse.runlock import run_lock
from flows.web.politeness import HostGate


@dataclass(frozen=True)
class FeedChoice:
    """Which feeds and entries a run takes (the flow's parameters)."""

    names: list[str] | None
    tags: list[str] | None
    max_per_feed: int | None  # None: the config's
    since: date | None
    part: tuple[int, int] | None  # shard K of N


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
    mode = modes.choose(dry_run=dry_run, stage_only=stage_only)
    params = {"feeds": feeds, "tags": tags, "max_articles_per_feed": max_articles_per_feed,
              "since": since, "dry_run": dry_run}
    if part or stage_only:  # only then, so unsharded runs keep the parameters they always recorded
        params |= {"shard": f"{part[0]}/{part[1]}" if part else None, "stage_only": stage_only}
    ctx = RunContext(settings, str(flow_run.get_id() or uuid.uuid4()), datetime.now(UTC), RunStats(), params,
                     "ingest")
    # A stage-only run locks its shard only: the shards of one fan-out run side by side, and the loader, which
    # holds the warehouse's lock, never meets a writer.
    lock = (f"shard-{part[0]}-of-{part[1]}" if part else "shard-1-of-1") if stage_only else None
    with run_lock(settings.warehouse.path, lock) as mine:
        if not mine:
            log.warning("another ingest run holds %s%s; this run does nothing", settings.warehouse.path,
                        f" ({lock})" if lock else "")
            return {"status": "skipped", "reason": "another run in progress"}
        with recorded_failure(ctx, dry_run=mode.dry_run, stage_only=stage_only):
            return run_ingest(ctx, mode, FeedChoice(feeds, tags, max_articles_per_feed, since, part))


def run_ingest(ctx: RunContext, mode: RunMode, choice: FeedChoice) -> dict[str, Any]:
    """One ingest run, step by step as docs/pipeline.md tells it; `mode` says what each step writes."""
    log, settings, stats = get_run_logger(), ctx.settings, ctx.stats
    prog = ctx.progress = IngestProgress(progress.current(), mode.dry_run)
    start = mode.open(ctx)  # 1. staged leftovers loaded, dead runs marked; feed states and stored seeds read
    feeds = chosen_feeds(settings, choice)
    gate = HostGate.for_settings(settings.fetch)
    pool = RunPool(settings)
    try:
        mode.seeds(ctx, start, pool)  # 2. new or changed seed files
        prog.feeds(len(feeds))  # 3. feeds
        out = fetch_feeds_task(quote(settings), quote(feeds), quote(start.feed_states), ctx.run_id, quote(stats),
                               gate=gate, log=log.warning, progress=prog.event)
        new = new_entries(ctx, out, choice, mode)  # 4. new entries
        mode.head(ctx, out, new)
        prog.articles(len(new))
        process_batches(ctx, mode, pool, new, gate)  # 5. batches: pages, extraction, dedup, tags, stored
        mode.drain()
        prog.checkpoint()
        for note in gate.crawl_delay_notes():
            log.warning("politeness: %s", note)
    finally:
        pool.shutdown()
    end = mode.close(ctx)  # 6. finish: the run's row, checks, snapshot, report page
    publish_report(ctx, end)
    prog.checkpoint(100.0)
    if end.message:
        log.warning(end.message)
    return end.summary(ctx)


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


def chosen_feeds(settings: Settings, choice: FeedChoice) -> list[FeedConfig]:
    """The feeds the run fetches: those selected by name and tag, in its shard."""
    feeds = collect.in_shard(select_feeds(settings, choice.names, choice.tags), choice.part)
    if choice.part:
        get_run_logger().info("shard %d/%d: %d of the selected feeds", choice.part[0], choice.part[1], len(feeds))
    return feeds


def new_entries(ctx: RunContext, out: FeedsOutcome, choice: FeedChoice, mode: RunMode) -> list[FeedEntry]:
    """The entries whose article is not stored yet, within the backfill window, at most so many per feed."""
    settings, stats = ctx.settings, ctx.stats
    most = settings.fetch.max_articles_per_feed if choice.max_per_feed is None else choice.max_per_feed
    new = collect.select_new(settings, _since(out.entries, choice.since), out.fetch_rows, most,
                             read_only=mode.read_only, state_rows=out.state_rows)
    stats.entries_new = len(new)
    get_run_logger().info("%d feeds: %d ok, %d not modified, %d failed, %d skipped; %d entries, %d new",
                          stats.feeds_total, stats.feeds_ok, stats.feeds_not_modified, stats.feeds_failed,
                          stats.feeds_skipped, stats.entries_seen, len(new))
    return new


def process_batches(ctx: RunContext, mode: RunMode, pool: RunPool, new: list[FeedEntry], gate: HostGate) -> None:
    """Download, extract, dedup-check and tag the new entries batch by batch (flows/run/stream.py); the mode
    stores each batch while the pool works on the next ones."""
    if not new:
        return
    log, settings, stats = get_run_logger(), ctx.settings, ctx.stats
    log.info("process pool: %s", pool.describe())
    n_batches = -(-len(new) // settings.pipeline.batch_size)
    tell = ctx.progress.event if ctx.progress is not None else None
    ready_batches = stream.articles(settings, pool.get(), new, gate=gate, progress=tell, read_only=mode.read_only)
    for i, ready in enumerate(ready_batches, start=1):
        count_batch(ctx, ready)
        mode.batch(ctx, ready)
        log.info("batch %d/%d processed; %d new articles, %d duplicates loaded so far", i, n_batches,
                 stats.articles_new, stats.duplicates_exact + stats.duplicates_near)
        if ctx.progress is not None:
            ctx.progress.checkpoint()


def count_batch(ctx: RunContext, ready: stream.Ready) -> None:
    """Count one batch that the article stream downloaded, extracted, dedup-checked and tagged.

    Not a task: it only counts, and a task run per batch cost the Prefect API (and this process) more than the
    work; the batch's `store-batch` task is what the UI shows. The CPU work of the next batches goes on in the
    pool meanwhile (flows/run/stream.py).
    """
    stats = ctx.stats
    stats.pages_fetched += ready.fetched
    stats.pages_failed += sum(1 for p in ready.pages if p["outcome"] in ("fallback", "failed"))
    fallbacks = sum(1 for d in ready.docs if d.body_source == "feed_summary")
    stats.fallbacks += fallbacks
    get_run_logger().info("batch of %d pages: %d documents, %d fallbacks", len(ready.pages), len(ready.docs),
                          fallbacks)


def _since(entries: list[Any], since: date | None) -> list[Any]:
    if since is None:
        return entries
    cut = datetime.combine(since, datetime.min.time(), UTC)
    return [e for e in entries if e.published_at is None or e.published_at >= cut]

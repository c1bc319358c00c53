"""Prefect flows: the edges of newsflow. Each task wraps a plain function of a stage module (flows/pipeline.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.core import owned
from flows.core.errors import describe
from flows.core.settings import FeedConfig, Settings, WarehouseSettings, load_settings
from flows.core.stats import RunStats
from flows.run import alerts, artifacts, collect, documents, progress, stream, workers
from flows.text.seeds import Seed, SeedError
from flows.warehouse import checks, database, reportpage, runstate, snapshot, staging, store
from flows.warehouse.runlock import run_lock, shards_alive
from flows.web.politeness import HostGate

# Tasks take live objects (pools, clients): no input hashing, no result persistence.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False}
# The run context, the batches and the feeds stage's inputs are passed `quote`d: otherwise Prefect walks every
# element of them (each document's shingles, mentions ...; each feed's config and stored state) twice per task
# call looking for futures, which cost the parent more CPU than staging and loading the batch (py-spy, 704
# articles: docs/benchmarks.md), and 40 ms of a quiet run's 100 feeds.

fetch_feeds = task(collect.fetch_feeds, name="fetch-feeds", **_TASK)
load_pending = task(store.load_pending, name="load-staged", retries=2, retry_delay_seconds=[5, 30], **_TASK)
publish_snapshot = task(snapshot.publish_snapshot, name="publish-snapshot", **_TASK)


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


_EVENTS = {"feed": "feeds", "downloaded": "pages", "extracted": "extracted", "tagged": "tagged"}


class IngestProgress:
    """An ingest run's progress: shown by the reporter the CLI installed (flows/run/progress.py) and kept in the run's
    `ingest-progress` artifact (feeds 0-10 %, articles stored 10-95 %, checks and snapshot the rest).

    Counters move from any thread; the artifact is written from the flow's thread only (`checkpoint`), once per
    stage or batch, so the Prefect API sees a handful of updates, not one per article.
    """

    def __init__(self, reporter: progress.Reporter, dry_run: bool) -> None:
        self.reporter = reporter
        self.dry_run = dry_run
        self.total = 0
        self.loaded = 0  # this run's own count: the reporter may be shared by several runs in one process
        self.waiting: dict[str, int] = {}
        self.shown = 0.0
        self.artifact_id = create_progress_artifact(0.0, key="ingest-progress", description="ingest: feeds, "
                                                    "then articles downloaded, extracted, tagged and loaded")

    def event(self, name: str, n: int) -> None:
        """The stages' callback (collect.fetch_feeds, stream.articles)."""
        self.reporter.advance(_EVENTS.get(name, name), n)

    def feeds(self, n: int) -> None:
        self.reporter.add("feeds", "feeds fetched", n)

    def articles(self, n: int) -> None:
        """The feeds are done and `n` new entries are to be processed."""
        r, self.total = self.reporter, n
        r.add("pages", "pages downloaded", n)
        r.add("extracted", "articles extracted", n)
        r.add("tagged", "articles tagged")  # copies of stored articles skip NER: no total known up front
        r.add("loaded", "articles processed (dry run)" if self.dry_run else "articles loaded", n, main=True)
        r.gauge("waiting", "batches waiting to load", 0)
        if n:  # with nothing new the run is all but done: the artifact goes to 100 at its end, one update
            self.checkpoint(10.0)

    def queued(self, batch_id: str, n: int) -> None:
        self.waiting[batch_id] = n
        self.reporter.gauge("waiting", "batches waiting to load", len(self.waiting))

    def stored(self, batch_id: str) -> None:
        """A queued batch is loaded (or staged for the next run: it is safe either way)."""
        n = self.waiting.pop(batch_id, None)
        if n is not None:
            self.reporter.gauge("waiting", "batches waiting to load", len(self.waiting))
            self.reporter.advance("loaded", n)
            self.loaded += n

    def processed(self, n: int) -> None:
        """A dry-run batch is done (nothing to load)."""
        self.reporter.advance("loaded", n)
        self.loaded += n

    def checkpoint(self, percent: float | None = None) -> None:
        """Move the artifact to `percent`, or to where the loaded articles put it; never backwards."""
        if percent is None:
            if not self.total:
                return  # nothing to load: the end of the run moves it
            # Not the reporter's count: without a CLI every run in the process shares the silent default
            # reporter, whose counters add up across runs (a second run's bar passed 100 %).
            percent = 10.0 + 85.0 * min(1.0, self.loaded / self.total)
        if percent > self.shown:
            self.shown = percent
            update_progress_artifact(self.artifact_id, round(percent, 1))


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str, sort_keys=True)


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


@task(name="store-batch", retries=1, retry_delay_seconds=5, **_TASK)
def store_batch(ctx: RunContext, batch: staging.Batch, *, last: bool = False) -> bool:
    """Stage and load one batch; False when it stays staged because the warehouse is locked (or the run is
    stage-only: the loader loads it). Only the run's `last` batch checkpoints the file (store.store)."""
    if ctx.settings.stage_only:
        staging.write(batch, ctx.settings.warehouse.staging_dir)
        ctx.stats.batches_staged += 1
        return False
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


@task(name="warehouse-checks", **_TASK)
def warehouse_checks(ctx: RunContext) -> tuple[checks.CheckRun | None, artifacts.EndReads | None]:
    """Run the warehouse checks and store them with the run (check_results, runs.checks_failed), then read what
    the run's report and alerts show over the same connection. (None, None) when the checks could not run (the
    warehouse is locked: a warning, not a failure); the report then reads for itself."""
    log = get_run_logger()
    wh = ctx.settings.warehouse
    try:
        with database.connect(wh, wait=min(5.0, wh.lock_wait_seconds)) as conn:
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
        with recorded_failure(ctx, dry_run):
            return _ingest(ctx, feeds, tags, max_articles_per_feed, since, dry_run, part)


@contextmanager
def recorded_failure(ctx: RunContext, dry_run: bool = False) -> Iterator[None]:
    """A run that fails leaves a `failed` runs row with its one-line reason (best effort, never in place of the
    error), so `newsflow status` shows it even when it failed before its first load."""
    try:
        yield
    except Exception as exc:
        if not dry_run:
            batch = ctx.batch()
            batch.add("runs", ctx.run_row("failed", describe(exc)))
            try:
                store.record_run(ctx.settings, batch)
            except Exception as other:  # a footnote to the run's own error, which is raised below
                get_run_logger().warning("run %s failed and could not be recorded as failed: %s", ctx.run_id,
                                         describe(other))
        raise


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
    if not dry_run and not stage_only and (staging.pending(staged_dir) or staging.partial(staged_dir)):
        loaded, left = load_pending(settings, stats, ctx.run_id)
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
            load_seeds_batch(ctx, pool, seeds, errors)

        loads: list[Any] = []
        prog.feeds(len(selected))
        out = fetch_feeds(quote(settings), quote(selected), quote(start.feed_states), ctx.run_id, quote(stats),
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
                loads.append(store_batch.submit(quote(ctx), quote(head)))
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
                loads.append(store_batch.submit(quote(ctx), quote(batch), wait_for=loads[-1:]))
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
    checked, end, unpublished = None, None, None
    if stage_only and not dry_run:
        tail = quiet_head or ctx.batch()  # a quiet shard's feed rows go with its run row
        tail.add("runs", ctx.run_row(status))
        store_batch(quote(ctx), quote(tail), last=True)
        status = "staged"
        message = (f"stage-only: {stats.batches_staged} batches staged in {settings.warehouse.staging_dir}; "
                   "`newsflow load` (or the fan-out's loader) loads them")
    elif not dry_run:
        # Last chance to load what the lock kept staged (full lock wait), before the run row records the outcome.
        late, stats.batches_staged = store.load_pending(settings, stats, ctx.run_id)
        # Nothing new came in (no entry, seed or earlier staged batch): only this run's own bookkeeping rows change.
        quiet = quiet_head is not None and not (seeds or errors or loaded or late)
        if stats.batches_staged:
            status = "staged"
            message = (f"the warehouse was locked: {stats.batches_staged} batches are staged in "
                       f"{settings.warehouse.staging_dir} and the next run loads them; nothing is lost")
        tail = quiet_head or ctx.batch()
        tail.add("runs", ctx.run_row(status, message))
        store_batch(quote(ctx), quote(tail), last=True)
        if stats.batches_staged:
            status = "staged"
            message = message or (f"the warehouse was locked at the end of the run: its last batch is staged in "
                                  f"{settings.warehouse.staging_dir} and the next run loads it; nothing is lost")
            log.warning("warehouse checks skipped: the warehouse was locked at the end of the run")
        else:
            checked, end = warehouse_checks(quote(ctx))
            if quiet and snapshot_current(settings.warehouse, wh_changed_at):
                log.info("snapshot not republished: nothing new since it was published")
            else:
                unpublished = publish_or_log(settings, log)
    page = None if dry_run or stage_only else write_html_report(settings, log)
    artifacts.publish(ctx.settings, ctx.run_id, stats, dry_run or stage_only, checks=checked, html_path=page, reads=end)
    if not dry_run and not stage_only:
        # ERROR log + `newsflow.feed.failing` event per feed over the threshold
        alerts.publish(settings, log, None if end is None else end.alerting)
    if checked is not None:
        alerts.publish_checks(settings, checked, log)  # ERROR log + `newsflow.check.failed` event per check
    prog.checkpoint(100.0)
    summary = {"run_id": ctx.run_id, "status": "dry_run" if dry_run else status, **stats.counts(),
               "checks_failed": None if checked is None else len(checked.failed), "snapshot_error": unpublished}
    if message:
        log.warning(message)
    return summary


def warm_pool() -> dict[str, str | None]:
    """The warm pool `newsflow serve` keeps for the flow runs it starts (none when run otherwise)."""
    return {"warm": os.environ.get(workers.WARM_POOL_ENV), "key": os.environ.get(workers.WARM_POOL_KEY_ENV)}


def last_change(path: Path) -> float | None:
    """When the DuckDB file (or its write-ahead log) was last written; None when there is no file yet."""
    times = [p.stat().st_mtime for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return max(times) if times else None


def snapshot_current(wh: WarehouseSettings, changed_at: float | None) -> bool:
    """True when the published snapshot was written after `changed_at`, the warehouse's last write before this
    run: it then holds every article, and a run that brought nothing new need not copy the file again."""
    if not wh.snapshot or changed_at is None or not wh.snapshot_path.exists():
        return False
    return wh.snapshot_path.stat().st_mtime > changed_at


def publish_or_log(settings: Settings, log: Any) -> str | None:
    """Publish the snapshot; a failure (a full disk, say) is logged as an ERROR and returned for the summary:
    the run's data is loaded and the previous snapshot stays whole, so it never ends the run."""
    try:
        publish_snapshot(settings.warehouse)
    except database.WarehouseLocked:
        log.warning("snapshot not published: warehouse locked")
    except (OSError, database.WarehouseError, duckdb.Error) as exc:
        problem = f"{settings.warehouse.snapshot_path}: not published, the previous snapshot stays ({exc})"
        log.error("snapshot %s", problem)
        return problem
    return None


def write_html_report(settings: Settings, log: Any) -> Path | None:
    """Rewrite the `[report] html_path` page, if set; best effort, since a run never fails for its picture."""
    out = settings.report.html_file()
    if out is None:
        return None
    try:
        reportpage.write(settings.warehouse, out, owned=owned.of_settings(settings))  # checked again: files change
    except (database.WarehouseError, owned.OutputRefused, OSError, duckdb.Error) as exc:
        log.warning("HTML report not written to %s: %s", out, exc)
        return None
    log.info("HTML report written to %s", out)
    return out


def load_seeds(ctx: RunContext, seeds: list[Seed], errors: list[SeedError]) -> None:
    """Load seed files with a pool of their own (the `reload-seeds` and `load` flows, which have none)."""
    if not (seeds or errors):
        return
    pool = workers.make_pool(ctx.settings) if len(seeds) > 4 else workers.InlineExecutor()
    try:
        load_seeds_batch(ctx, pool, seeds, errors)
    finally:
        pool.shutdown()


def load_seeds_batch(ctx: RunContext, pool: Any, seeds: list[Seed], errors: list[SeedError]) -> None:
    """Load seed files in batches; each file that cannot be loaded is its own `page_fetches` row."""
    settings, log = ctx.settings, get_run_logger()
    errors = list(errors)
    docs = []
    for seed in seeds:
        try:
            docs.append(documents.seed_doc(seed, settings))
        except Exception as exc:  # one odd seed file must not stop the others
            log.exception("seed %s: unexpected error", seed.name)
            errors.append(SeedError(seed.name, "internal_error", describe(exc)))
    for err in errors:
        log.warning("seed skipped: %s", err)
    shown = progress.current()
    shown.add("seeds", "seed files read", len(docs) + len(errors))
    shown.advance("seeds", len(errors))
    now = datetime.now(UTC)
    failures = [{"url": e.url, "feed": None, "run_id": ctx.run_id, "outcome": "failed", "error": e.code,
                 "error_detail": e.detail, "fetched_at": now} for e in errors]
    for chunk in workers.chunks(docs, settings.pipeline.batch_size) or [[]]:
        documents.tag_documents(pool, chunk, settings)
        batch = ctx.batch()
        batch.add("docs", *chunk)
        batch.add("page_fetches", *failures)
        failures = []
        store_batch(quote(ctx), quote(batch))
        shown.advance("seeds", len(chunk))


@flow(name="reload-seeds", log_prints=True)
def reload_seeds(
    config: Annotated[str | None, Field(description="Config file; empty uses the default")] = None,
    warehouse_path: Annotated[str | None, Field(description="DuckDB file; empty uses the config")] = None,
) -> dict[str, Any]:
    """Load new or changed files from the seed folder (unchanged ones are skipped).

    Args:
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    ctx = RunContext(settings, str(flow_run.get_id() or uuid.uuid4()), datetime.now(UTC), RunStats(), {},
                     "reload_seeds")
    database.ensure_ready(settings.warehouse)
    seeds, errors = runstate.seeds_to_load(settings)
    load_seeds(ctx, seeds, errors)
    log.info("%d seed files loaded or reloaded, %d errors", len(seeds), len(errors))
    return {"seeds_loaded": len(seeds), "errors": [str(e) for e in errors], **ctx.stats.counts()}


@flow(name="load", log_prints=True)
def load(
    config: Annotated[str | None, Field(description="Config file; empty uses the default")] = None,
    warehouse_path: Annotated[str | None, Field(description="DuckDB file; empty uses the config")] = None,
) -> dict[str, Any]:
    """The one committer: load every staged batch oldest first (the dedup decision inside each transaction, so a
    story staged by two shards is stored once), then new seed files, then run the warehouse checks.

    Args:
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    ctx = RunContext(settings, str(flow_run.get_id() or uuid.uuid4()), datetime.now(UTC), RunStats(), {}, "load")
    with run_lock(settings.warehouse.path) as mine:
        if not mine:
            log.warning("an ingest or load run holds %s; this run does nothing", settings.warehouse.path)
            return {"run_id": ctx.run_id, "status": "skipped", "reason": "another run in progress"}
        with recorded_failure(ctx):
            return _load(ctx)


def _load(ctx: RunContext) -> dict[str, Any]:
    log, settings, stats = get_run_logger(), ctx.settings, ctx.stats
    database.ensure_ready(settings.warehouse)
    loaded, left = load_pending(settings, stats, ctx.run_id)
    log.info("loaded %d staged batches; %d still staged", loaded, left)
    alive = shards_alive(settings.warehouse.path)
    if alive:  # their `running` rows are alive: the next load, once they are done, marks only the dead ones
        log.info("shard runs still staging (%s): dead runs are marked by a later load", ", ".join(alive))
    elif not left:
        runstate.mark_abandoned(settings, ctx.run_id)
    seeds, errors = runstate.seeds_to_load(settings)
    load_seeds(ctx, seeds, errors)
    status, message, checked, unpublished = "completed", None, None, None
    left = len(staging.pending(settings.warehouse.staging_dir))
    if left:
        status = "staged"
        message = (f"the warehouse stayed locked: {left} batches are still staged in "
                   f"{settings.warehouse.staging_dir}; the next load takes them")
    tail = ctx.batch()
    tail.add("runs", ctx.run_row(status, message))
    store_batch(quote(ctx), quote(tail), last=True)
    if not left and not stats.batches_staged:
        checked, _ = warehouse_checks(quote(ctx))
        unpublished = publish_or_log(settings, log)
        write_html_report(settings, log)
    if message:
        log.warning(message)
    return {"run_id": ctx.run_id, "status": status, "batches_loaded": loaded, **stats.counts(),
            "checks_failed": None if checked is None else len(checked.failed), "snapshot_error": unpublished}

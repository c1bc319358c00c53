"""Run modes: what an ingest run writes, chosen once when it starts (`choose`).

    NormalRun     loads the warehouse: what earlier runs left staged, new seed files, each batch as it is ready,
                  then the run's row, the checks, the snapshot and the report page (flows/run/finish.py)
    DryRun        fetches, extracts and tags, and writes nothing
    StageOnlyRun  one shard of a fan-out: stages every batch for the loader (the `load` flow) and reads the
                  warehouse read-only, so shard runs never wait for (or hold up) the one loader's write lock

Each has the same methods, which the ingest flow (flows/run/ingest.py) calls in this order: `open` (get the
warehouse ready, read what steers the run), `seeds`, `head` (the run's feed rows), `batch` once per processed
batch, `drain` (wait for the batches being stored) and `close` (record the outcome).
"""

from __future__ import annotations

from typing import Any, Protocol

from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from flows.run import collect, stream
from flows.run.collect import FeedsOutcome
from flows.run.finish import RunEnd, finish_run
from flows.run.loader import store_seed_files
from flows.run.tasks import RunContext, load_backlog_task, stage_batch_task, store_batch_task
from flows.run.workers import RunPool
from flows.warehouse import runstate, staging, store
from flows.warehouse.runlock import shards_alive


class RunMode(Protocol):
    dry_run: bool  # nothing is written: the progress says "processed", the summary "dry_run"
    read_only: bool  # the warehouse is only ever read, read-only (a stage-only shard, or a dry run of one)

    def open(self, ctx: RunContext) -> runstate.RunStart:
        """Get the warehouse ready and read what steers the run: feed states, stored seeds."""

    def seeds(self, ctx: RunContext, start: runstate.RunStart, pool: RunPool) -> None:
        """Store the seed files that are new or changed since they were stored."""

    def head(self, ctx: RunContext, out: FeedsOutcome, new: list[Any]) -> None:
        """Store the feeds stage's rows (feeds, fetches, entries); with `new` entries, the run's `running` row."""

    def batch(self, ctx: RunContext, ready: stream.Ready) -> None:
        """Store (or only count) one batch the article stream processed."""

    def drain(self) -> None:
        """Wait for the batches still being stored."""

    def close(self, ctx: RunContext) -> RunEnd:
        """Record the run's outcome."""


def choose(*, dry_run: bool, stage_only: bool) -> RunMode:
    if dry_run:
        return DryRun(read_only=stage_only)
    return StageOnlyRun() if stage_only else NormalRun()


class _StoresBatches:
    """The head and the batches of a run that writes, stored by `task` in a writer thread one after the other
    (wait_for chains them: still one writer, batches in order), so the flow's thread keeps feeding the pool while
    a batch is stored. At most two stores wait at a time, which bounds the batches held in memory."""

    dry_run = False

    def __init__(self, task: Any) -> None:
        self._task = task
        self._stores: list[PrefectFuture[bool]] = []
        self._quiet_head: staging.Batch | None = None  # the head of a run with no new entry

    def head(self, ctx: RunContext, out: FeedsOutcome, new: list[Any]) -> None:
        head = ctx.batch()
        head.add("feeds", *out.state_rows)
        head.add("feed_fetches", *out.fetch_rows)
        head.add("entries", *collect.entry_rows(out.entries, ctx.run_id))
        if new:
            head.add("runs", ctx.run_row("running"))  # marked abandoned by the next run if this one dies
            # In the writer thread: the downloads start while it loads.
            self._stores.append(self._task.submit(quote(ctx), quote(head)))
        else:
            self._quiet_head = head  # nothing to process: these rows go with the run's last batch, one load fewer

    def batch(self, ctx: RunContext, ready: stream.Ready) -> None:
        batch = ctx.batch()
        batch.add("page_fetches", *(dict(p, run_id=ctx.run_id) for p in ready.pages))
        batch.add("docs", *ready.docs)
        if ctx.progress is not None:
            ctx.progress.queued(batch.batch_id, len(ready.entries))
        if len(self._stores) >= 2:
            self._stores.pop(0).result()
        self._stores.append(self._task.submit(quote(ctx), quote(batch), wait_for=self._stores[-1:]))

    def drain(self) -> None:
        for stored in self._stores:
            stored.result()

    def tail(self, ctx: RunContext) -> staging.Batch:
        """The batch that carries the run's row: a quiet run's head (its feed rows), else a new one."""
        return self._quiet_head or ctx.batch()


class NormalRun(_StoresBatches):
    """A run that loads each batch as it is ready (staged first: a locked warehouse loses nothing)."""

    read_only = False

    def __init__(self) -> None:
        super().__init__(store_batch_task)
        self._fresh = False  # earlier staged batches or seed files came in

    def open(self, ctx: RunContext) -> runstate.RunStart:
        log, settings = get_run_logger(), ctx.settings
        staged_dir = settings.warehouse.staging_dir
        # A task only when earlier runs left something staged: on a quiet run every task costs Prefect API calls.
        # Loaded before the feed states are read, as they may hold a newer state of some feed.
        if staging.pending(staged_dir) or staging.partial(staged_dir):
            loaded, left = load_backlog_task(settings, ctx.stats, ctx.run_id)
            self._fresh = bool(loaded)
            if loaded or left:
                log.info("loaded %d batches staged by earlier runs; %d still staged", loaded, left)
        # A staging shard's `running` row is alive: dead runs are not marked while one stages.
        start = runstate.start_run(settings, ctx.run_id, mark_dead=not shards_alive(settings.warehouse.path))
        if not start.ready:
            log.warning("%s is held open by another process: this run stages its batches in %s and loads them as "
                        "soon as the lock is free (or the next run does)", settings.warehouse.path,
                        settings.warehouse.staging_dir)
        return start

    def seeds(self, ctx: RunContext, start: runstate.RunStart, pool: RunPool) -> None:
        seeds, errors = runstate.seeds_to_load(ctx.settings, start.seed_hashes)
        if seeds or errors:
            self._fresh = True
            store_seed_files(ctx, pool.get(), seeds, errors)

    def close(self, ctx: RunContext) -> RunEnd:
        settings, stats = ctx.settings, ctx.stats
        # Last chance to load what the lock kept staged (full lock wait), before the run row records the outcome.
        late, stats.batches_staged = store.load_pending(settings, stats, ctx.run_id)
        status, message = "completed", None
        if stats.batches_staged:
            status = "staged"
            message = (f"the warehouse was locked: {stats.batches_staged} batches are staged in "
                       f"{settings.warehouse.staging_dir} and the next run loads them; nothing is lost")
        # Nothing new came in (no entry, seed or earlier staged batch): only this run's own bookkeeping rows
        # change, which never make a snapshot due on their own (flows/warehouse/snapshot.py `due`).
        quiet = self._quiet_head is not None and not (self._fresh or late)
        return finish_run(ctx, self.tail(ctx), status, message, quiet=quiet)


class StageOnlyRun(_StoresBatches):
    """A shard of a fan-out: every batch is staged for the loader, which creates and migrates the warehouse,
    loads the backlog, marks dead runs and stores the seed files (shards would each stage the same files)."""

    read_only = True

    def __init__(self) -> None:
        super().__init__(stage_batch_task)

    def open(self, ctx: RunContext) -> runstate.RunStart:
        return runstate.start_run(ctx.settings, ctx.run_id, mark_dead=False, read_only=True)

    def seeds(self, ctx: RunContext, start: runstate.RunStart, pool: RunPool) -> None:
        pass

    def close(self, ctx: RunContext) -> RunEnd:
        tail = self.tail(ctx)  # a quiet shard's feed rows go with its run row
        tail.add("runs", ctx.run_row("completed"))
        stage_batch_task(quote(ctx), quote(tail))
        return RunEnd("staged", f"stage-only: {ctx.stats.batches_staged} batches staged in "
                                f"{ctx.settings.warehouse.staging_dir}; `newsflow load` (or the fan-out's loader) "
                                "loads them")


class DryRun:
    """Fetches, extracts and tags; writes nothing (the warehouse is read for feed states and known URLs)."""

    dry_run = True

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only

    def open(self, ctx: RunContext) -> runstate.RunStart:
        start = runstate.start_run(ctx.settings, ctx.run_id, mark_dead=False, read_only=self.read_only)
        if not (start.ready or self.read_only):
            get_run_logger().warning("%s is held open by another process: this dry run reads the published "
                                     "snapshot", ctx.settings.warehouse.path)
        return start

    def seeds(self, ctx: RunContext, start: runstate.RunStart, pool: RunPool) -> None:
        pass

    def head(self, ctx: RunContext, out: FeedsOutcome, new: list[Any]) -> None:
        pass

    def batch(self, ctx: RunContext, ready: stream.Ready) -> None:
        if ctx.progress is not None:
            ctx.progress.processed(len(ready.entries))

    def drain(self) -> None:
        pass

    def close(self, ctx: RunContext) -> RunEnd:
        return RunEnd("dry_run")

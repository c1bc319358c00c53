"""The loader's Prefect flows: `load` (the one committer of staged batches) and `reload-seeds`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.core.errors import describe
from flows.core.settings import load_settings
from flows.core.stats import RunStats
from flows.run import documents, progress, workers
from flows.run.finish import finish_run, recorded_failure
from flows.run.tasks import RunContext, load_backlog_task, store_ahead_task, store_batch_task
from flows.text.seeds import Seed, SeedError
from flows.warehouse import database, runstate, staging
from flows.warehouse.runlock import run_lock, shards_alive


def store_seeds(ctx: RunContext, seeds: list[Seed], errors: list[SeedError], *, ahead: bool = False) -> None:
    """Store seed files with a pool of their own (the `reload-seeds` and `load` flows, which have none); `ahead`:
    before the batches already staged (store_seed_files)."""
    if not (seeds or errors):
        return
    pool = workers.make_pool(ctx.settings) if len(seeds) > 4 else workers.InlineExecutor()
    try:
        store_seed_files(ctx, pool, seeds, errors, ahead=ahead)
    finally:
        pool.shutdown()


def store_seed_files(ctx: RunContext, pool: Any, seeds: list[Seed], errors: list[SeedError], *,
                     ahead: bool = False) -> None:
    """Store seed files in batches (tagged in `pool`); each file that cannot be loaded is its own `page_fetches` row."""
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
        (store_ahead_task if ahead else store_batch_task)(quote(ctx), quote(batch))
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
    store_seeds(ctx, seeds, errors)
    log.info("%d seed files loaded or reloaded, %d errors", len(seeds), len(errors))
    # Its `runs` row, like every flow that writes articles (with the seed batches, or staged like them).
    status = "staged" if ctx.stats.batches_staged else "completed"
    tail = ctx.batch()
    tail.add("runs", ctx.run_row(status))
    store_batch_task(quote(ctx), quote(tail), last=True)
    return {"run_id": ctx.run_id, "status": status, "seeds_loaded": len(seeds), "errors": [str(e) for e in errors],
            **ctx.stats.counts()}


@flow(name="load", log_prints=True)
def load(
    config: Annotated[str | None, Field(description="Config file; empty uses the default")] = None,
    warehouse_path: Annotated[str | None, Field(description="DuckDB file; empty uses the config")] = None,
) -> dict[str, Any]:
    """The one committer: store new seed files, then load every staged batch oldest first (the dedup decision
    inside each transaction, so a story staged by two shards is stored once, and a seed is the original of the
    shards' copies of it), then run the warehouse checks.

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
            return run_loader(ctx)


def run_loader(ctx: RunContext) -> dict[str, Any]:
    """The `load` flow's body, under the warehouse's run lock."""
    log, settings, stats = get_run_logger(), ctx.settings, ctx.stats
    database.ensure_ready(settings.warehouse)
    # New seed files first: a seed is the original of the shards' staged copies of it, not one of them.
    seeds, errors = runstate.seeds_to_load(settings)
    store_seeds(ctx, seeds, errors, ahead=True)
    aside = len(staging.quarantined(settings.warehouse.staging_dir))
    taken, left = load_backlog_task(settings, stats, ctx.run_id)
    # What went to quarantine is not loaded: "2 loaded" when both were moved aside said otherwise.
    quarantined = len(staging.quarantined(settings.warehouse.staging_dir)) - aside
    loaded = taken - quarantined
    log.info("loaded %d staged batches; %d moved to quarantine; %d still staged", loaded, quarantined, left)
    alive = shards_alive(settings.warehouse.path)
    if alive:  # their `running` rows are alive: the next load, once they are done, marks only the dead ones
        log.info("shard runs still staging (%s): dead runs are marked by a later load", ", ".join(alive))
    elif not left:
        runstate.mark_abandoned(settings, ctx.run_id)
    status, message = "completed", None
    left = len(staging.pending(settings.warehouse.staging_dir))
    if left:
        status = "staged"
        message = (f"the warehouse stayed locked: {left} batches are still staged in "
                   f"{settings.warehouse.staging_dir}; the next load takes them")
    end = finish_run(ctx, ctx.batch(), status, message)
    if end.message:
        log.warning(end.message)
    return {"run_id": ctx.run_id, "status": end.status, "batches_loaded": loaded,
            "batches_quarantined": quarantined, **stats.counts(),
            "checks_failed": None if end.checked is None else len(end.checked.failed),
            "snapshot_error": end.snapshot_error}

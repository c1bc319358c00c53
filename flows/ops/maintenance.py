"""Maintenance flows: re-run dedup and entity tagging over stored articles, with progress in the Prefect UI. Each
run records its `runs` row like every other flow (flow `reprocess`: `running`, then `completed` or `failed`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import Field

from flows.core.settings import load_settings
from flows.core.stats import RunStats
from flows.ops import reprocess as redo
from flows.run import progress
from flows.run.finish import recorded_failure
from flows.run.tasks import RunContext
from flows.run.workers import make_pool
from flows.warehouse import database, search_index, store
from flows.warehouse.runlock import run_lock

_TASK = {"cache_policy": NO_CACHE, "persist_result": False}


class Step(StrEnum):
    dedup = "dedup"
    entities = "entities"
    stories = "stories"


def _progress(step: Step) -> Any:
    """A progress artifact for one step, and the callback that moves it, logs each batch and tells the terminal
    (the reporter the CLI installed, flows/run/progress.py)."""
    log = get_run_logger()
    artifact_id = create_progress_artifact(0.0, key=f"reprocess-{step.value}", description=f"reprocess: {step}")
    shown = progress.current()
    label = {Step.dedup: "dedup: articles re-checked", Step.entities: "entities: articles re-tagged",
             Step.stories: "stories: articles placed"}[step]
    shown.update(step.value, label, 0, main=True)

    def report(done: int, total: int) -> None:
        update_progress_artifact(artifact_id, 100.0 * done / max(total, 1))
        shown.update(step.value, label, done, total, main=True)
        log.info("%s: %d/%d articles", step, done, total)

    return report


@task(name="redo-dedup", **_TASK)
def redo_dedup(settings: Any, run_id: str, batch_size: int) -> redo.ReprocessStats:
    return redo.redo_dedup(settings, run_id, batch_size, _progress(Step.dedup))


@task(name="retag-entities", **_TASK)
def retag(settings: Any, batch_size: int, only_stale: bool) -> redo.ReprocessStats:
    pool = make_pool(settings)
    try:
        return redo.retag(settings, pool, batch_size, only_stale, _progress(Step.entities))
    finally:
        pool.shutdown(cancel_futures=True)


@task(name="rebuild-stories", **_TASK)
def rebuild_stories(settings: Any, batch_size: int) -> redo.ReprocessStats:
    return redo.rebuild_stories(settings, batch_size, _progress(Step.stories))


@flow(name="reprocess", log_prints=True)
def reprocess(
    steps: Annotated[list[Step], Field(min_length=1)] = [Step.dedup, Step.entities],  # noqa: B006
    only_stale: bool = True,
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500,
    config: str | None = None,
    warehouse_path: str | None = None,
) -> dict[str, Any]:
    """Re-run dedup and/or entity tagging over the stored articles, one transaction per batch.

    Args:
        steps: dedup re-signs and re-indexes every article with the current [dedup] settings and moves
            articles that now copy an earlier one to `duplicates`; entities re-tags with the [entities] pipeline.
        only_stale: Entities: only re-tag articles tagged by another pipeline version (off: re-tag all).
        batch_size: Articles per batch; each batch is one transaction.
        config: Config file; empty uses NEWSFLOW_CONFIG or the default.
        warehouse_path: DuckDB file; empty uses the config.
    """
    log = get_run_logger()
    settings = load_settings(config, warehouse=warehouse_path)
    run_id = str(flow_run.get_id() or uuid.uuid4())
    parameters = {"steps": [str(s) for s in steps], "only_stale": only_stale, "batch_size": batch_size}
    ctx = RunContext(settings, run_id, datetime.now(UTC), RunStats(), parameters, "reprocess")
    result: dict[str, Any] = {"run_id": run_id}
    with run_lock(settings.warehouse.path) as mine:
        if not mine:
            # Unlike a scheduled ingest, a maintenance run is asked for by a person: say so loudly.
            raise RuntimeError(f"an ingest or maintenance run holds {settings.warehouse.path}; try again later")
        with recorded_failure(ctx):  # a failure leaves a `failed` row with its one-line reason
            _record(ctx, "running")
            if Step.dedup in steps:
                result["dedup"] = redo.counts(redo_dedup(settings, run_id, batch_size))
                _count_copies(ctx)
            if Step.entities in steps:
                result["entities"] = redo.counts(retag(settings, batch_size, only_stale))
                ctx.stats.entity_mentions = result["entities"]["entity_mentions"]
            if Step.stories in steps:
                done = redo.counts(rebuild_stories(settings, batch_size))
                result["stories"] = {k: done[k] for k in ("articles_placed", "stories", "batches")}
            # The texts and copies the index holds may have changed: rebuild it (docs/search.md).
            rebuilt = search_index.refresh(settings, rebuild=True, wait=settings.warehouse.lock_wait_seconds)
            result["search_index"] = rebuilt.mode if rebuilt.mode != "skipped" else f"skipped: {rebuilt.reason}"
            _record(ctx, "completed", _message(result))
    rows = [{"step": step, "metric": k.replace("_", " "), "value": v}
            for step in ("dedup", "entities", "stories") for k, v in result.get(step, {}).items()]
    create_table_artifact(key="reprocess-summary", table=rows, description=f"newsflow reprocess run {run_id}")
    log.info("reprocess done: %s", result)
    return result


def _record(ctx: RunContext, status: str, message: str | None = None) -> None:
    """Write the run's `runs` row as the other flows do, through a staged batch (store.record_run: loaded at once,
    or staged for the next run when the warehouse stays held)."""
    batch = ctx.batch()
    batch.add("runs", ctx.run_row(status, message))
    store.record_run(ctx.settings, batch)


_SHOWN = {"dedup": ("articles_seen", "duplicates_found"), "entities": ("articles_tagged", "entity_mentions"),
          "stories": ("articles_placed", "stories")}


def _message(result: dict[str, Any]) -> str:
    """The run's counts the `runs` columns have no place for, e.g. `dedup: articles_seen=14, duplicates_found=3;
    search index: base`."""
    parts = [f"{step}: " + ", ".join(f"{k}={result[step][k]}" for k in keys)
             for step, keys in _SHOWN.items() if step in result]
    return "; ".join([*parts, f"search index: {result['search_index']}"])


def _count_copies(ctx: RunContext) -> None:
    """The copies this run moved to `duplicates`, by method, as an ingest counts its own."""
    with database.connect(ctx.settings.warehouse, read_only=True) as conn:
        found = dict(conn.execute("select method, count(*) from duplicates where run_id = ? group by method",
                                  [ctx.run_id]).fetchall())
    ctx.stats.duplicates_exact, ctx.stats.duplicates_near = found.get("exact", 0), found.get("near", 0)

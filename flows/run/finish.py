"""The end of a run, one function for the ingest and the loader (`finish_run`), and what the ingest publishes.

A run that loads ends the same way whichever flow it is: its `runs` row goes with its last batch; when nothing is
left staged, the warehouse checks run (their connection checkpoints the file as it closes) and the snapshot is
published if it is due (flows/warehouse/snapshot.py: on a schedule, not by every run); then the HTML report page
is rewritten. An ingest then publishes its artifacts and alerts (`publish_report`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from prefect import get_run_logger
from prefect.utilities.annotations import quote

from flows.core import owned
from flows.core.errors import describe
from flows.core.settings import Settings
from flows.run import alerts, artifacts, savedsearches
from flows.run.tasks import (
    RunContext,
    publish_snapshot_task,
    refresh_search_task,
    store_batch_task,
    warehouse_checks_task,
)
from flows.warehouse import checks, database, reportpage, search_index, snapshot, staging, store


@dataclass
class RunEnd:
    """How a run ended: what its summary says, and what the report shows."""

    status: str  # completed, staged (something waits in the staging folder), dry_run
    message: str | None = None  # logged as a warning at the very end
    checked: checks.CheckRun | None = None  # the warehouse checks, when they ran
    reads: artifacts.EndReads | None = None  # what the report and alerts show, read with the checks
    page: Path | None = None  # the HTML report page written
    wrote: bool = False  # the run wrote the warehouse: its report and alerts read it
    snapshot_error: str | None = None  # the snapshot could not be published (publish_or_log)

    def summary(self, ctx: RunContext) -> dict[str, Any]:
        return {"run_id": ctx.run_id, "status": self.status, **ctx.stats.counts(),
                "checks_failed": None if self.checked is None else len(self.checked.failed),
                "snapshot_error": self.snapshot_error}


def finish_run(ctx: RunContext, tail: staging.Batch, status: str, message: str | None = None, *,
               quiet: bool = False) -> RunEnd:
    """Store the run's row with `tail`, its last batch; then, unless a batch stays staged (`status` "staged", or
    the warehouse locked at the end), run the warehouse checks and publish the snapshot when it is due
    (snapshot.due: missing, or older than `snapshot_every_hours`; `quiet`: the run brought nothing new); then
    rewrite the HTML report page."""
    log, settings = get_run_logger(), ctx.settings
    tail.add("runs", ctx.run_row(status, message))
    # The checks follow on a connection of their own, which folds the log into the file when it closes: one
    # checkpoint a run, not two (each 50-230 ms on a year's 6 GB file, a quiet run's largest write). A run whose
    # checks will not run checkpoints here, so the file at rest still has no log.
    store_batch_task(quote(ctx), quote(tail), last=status == "staged" or bool(ctx.stats.batches_staged))
    checked, reads, unpublished = None, None, None
    if status == "staged" or ctx.stats.batches_staged:
        status = "staged"
        message = message or (f"the warehouse was locked at the end of the run: its last batch is staged in "
                              f"{settings.warehouse.staging_dir} and the next run loads it; nothing is lost")
        log.warning("warehouse checks skipped: the warehouse was locked at the end of the run")
    else:
        checked, reads = warehouse_checks_task(quote(ctx))
        if snapshot.due(settings.warehouse, quiet=quiet):
            unpublished = publish_or_log(settings, log)
        elif settings.warehouse.snapshot and not settings.warehouse.is_lake:
            log.info("snapshot not republished: %s", snapshot.age_line(settings.warehouse))
        if ctx.stats.articles_new or ctx.stats.duplicates_exact or ctx.stats.duplicates_near or \
                search_index.behind_mark(settings.warehouse).exists():
            refresh_search(ctx, log)
    page = write_html_report(settings, log)
    return RunEnd(status, message, checked, reads, page, wrote=True, snapshot_error=unpublished)


def refresh_search(ctx: RunContext, log: Any) -> None:
    """Bring the full-text index beside the warehouse up to date with what this run loaded, then publish the new
    matches of the saved searches; best effort: the run's data is loaded, and the next refresh catches up."""
    settings = ctx.settings
    behind = search_index.behind_mark(settings.warehouse)
    with suppress(OSError):  # best effort: without it, a failed refresh waits for the next run that loads
        behind.touch()
    try:
        done = refresh_search_task(settings, build_limit=search_index.RUN_BUILD_LIMIT)
    except (OSError, database.WarehouseError, duckdb.Error) as exc:
        log.error("search index not refreshed: %s (the next run catches up; `newsflow search --rebuild` now)",
                  describe(exc))
        return
    if done.mode == "skipped" and not settings.warehouse.search_path.exists():  # none to be behind: maintain builds
        behind.unlink(missing_ok=True)
    if done.mode == "skipped":
        log.warning("search index not refreshed: %s", done.reason)
        return
    log.info("search index refreshed (%s): %d articles in %.2f s", done.mode, done.articles, done.seconds)
    if settings.searches:
        try:
            savedsearches.publish(settings, savedsearches.run_articles(settings, ctx.run_id), log, run_id=ctx.run_id)
        except (OSError, database.WarehouseError, duckdb.Error) as exc:
            log.error("saved searches not published: %s", describe(exc))


def publish_report(ctx: RunContext, end: RunEnd) -> None:
    """The ingest's artifacts in Prefect; an ERROR log and an event per feed failing past the threshold (when the
    run wrote the warehouse) and per failing check."""
    log, settings = get_run_logger(), ctx.settings
    artifacts.publish(settings, ctx.run_id, ctx.stats, not end.wrote, checks=end.checked, html_path=end.page,
                      reads=end.reads)
    if end.wrote:
        alerts.publish(settings, log, None if end.reads is None else end.reads.alerting)
    if end.checked is not None:
        alerts.publish_checks(settings, end.checked, log)


@contextmanager
def recorded_failure(ctx: RunContext, *, dry_run: bool = False, stage_only: bool = False) -> Iterator[None]:
    """A run that fails leaves a `failed` runs row with its one-line reason (best effort, never in place of the
    error), so `newsflow status` shows it even when it failed before its first load; a stage-only run stages it."""
    try:
        yield
    except Exception as exc:
        if not dry_run:
            batch = ctx.batch()
            batch.add("runs", ctx.run_row("failed", describe(exc)))
            try:
                store.record_run(ctx.settings, batch, stage_only=stage_only)
            except Exception as other:  # a footnote to the run's own error, which is raised below
                get_run_logger().warning("run %s failed and could not be recorded as failed: %s", ctx.run_id,
                                         describe(other))
        raise


def publish_or_log(settings: Settings, log: Any) -> str | None:
    """Publish the snapshot; a failure (a full disk, say) is logged as an ERROR and returned for the summary:
    the run's data is loaded and the previous snapshot stays whole, so it never ends the run."""
    try:
        publish_snapshot_task(settings.warehouse)
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
        # `out` is checked again: files change
        reportpage.write(settings.warehouse, out, owned=owned.of_settings(settings), searches=settings.searches)
    except (database.WarehouseError, owned.OutputRefused, OSError, duckdb.Error) as exc:
        log.warning("HTML report not written to %s: %s", out, exc)
        return None
    log.info("HTML report written to %s", out)
    return out

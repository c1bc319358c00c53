"""Alerts: feeds failing `health.alert_after_failures` runs in a row, and warehouse checks that fail at the end of
a run, each as an ERROR log and a Prefect event.

The condition is answered by the warehouse (feeds.consecutive_failures), so it survives restarts and is the same
whether the run came from a schedule, the UI or the CLI. A Prefect automation on the event sends the alert
(docs/prefect.md, automations/newsflow.yaml).
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from prefect.events import emit_event

from flows.core.settings import Settings
from flows.warehouse import database
from flows.warehouse.checks import CheckRun

FEED_FAILING = "newsflow.feed.failing"
CHECK_FAILED = "newsflow.check.failed"


def failing_on(conn: duckdb.DuckDBPyConnection, settings: Settings) -> list[dict[str, Any]]:
    """Feeds at or over the alert threshold, read over an open connection."""
    cur = conn.execute(database.query("failing_feeds"), {"alert_after": settings.health.alert_after_failures})
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def failing_feeds(settings: Settings) -> list[dict[str, Any]]:
    """Feeds at or over the alert threshold; empty when the warehouse is locked (the next run asks again)."""
    try:
        with database.connect(settings.warehouse, read_only=True, wait=settings.warehouse.waits.report) as conn:
            return failing_on(conn, settings)
    except database.WarehouseLocked:
        return []


def publish(settings: Settings, log: logging.Logger | logging.LoggerAdapter[Any],
            failing: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Log each failing feed at ERROR and emit one `newsflow.feed.failing` event per feed. `failing` is what
    failing_on read at the end of the run; None reads it now."""
    failing = failing_feeds(settings) if failing is None else failing
    for f in failing:
        log.error("feed %r has failed %d runs in a row (alert after %d): %s", f["feed"], f["consecutive_failures"],
                  settings.health.alert_after_failures, f["last_error"])
        emit_event(
            FEED_FAILING,
            resource={"prefect.resource.id": f"newsflow.feed.{f['feed']}", "prefect.resource.name": f["feed"]},
            payload={"feed": f["feed"], "url": f["url"], "consecutive_failures": f["consecutive_failures"],
                     "last_error": f["last_error"], "disabled": f["disabled"],
                     "alert_after_failures": settings.health.alert_after_failures},
        )
    return failing


def publish_checks(settings: Settings, checked: CheckRun, log: logging.Logger | logging.LoggerAdapter[Any]
                   ) -> list[str]:
    """Log each failing warehouse check at ERROR and emit one `newsflow.check.failed` event per check."""
    for r in checked.failed:
        what = f"could not run: {r.error}" if r.error else f"{r.offending_rows} offending rows, e.g. {r.sample[:1]}"
        log.error("warehouse check %r failed: %s (check_results, run %s)", r.name, what, checked.run_id)
        emit_event(
            CHECK_FAILED,
            resource={"prefect.resource.id": f"newsflow.check.{r.name}", "prefect.resource.name": r.name},
            payload={"check": r.name, "offending_rows": r.offending_rows, "error": r.error,
                     "sample": r.sample, "run_id": checked.run_id, "warehouse": str(settings.warehouse.path)},
        )
    return [r.name for r in checked.failed]
